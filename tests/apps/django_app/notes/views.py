from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from notes.forms import NoteForm
from notes.models import Note


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "notes/index.html", {"notes": Note.objects.all()})


def detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "notes/detail.html", {"note": get_object_or_404(Note, pk=pk)})


def new_note(request: HttpRequest) -> HttpResponse:
    form = NoteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        note = form.save()
        return redirect("detail", pk=note.pk)
    return render(request, "notes/new.html", {"form": form}, status=400 if form.errors else 200)


def api_notes(request: HttpRequest) -> JsonResponse:
    titles = request.GET.get("q", "")
    notes = Note.objects.filter(title__icontains=titles).values("id", "title")
    return JsonResponse({"notes": list(notes), "count": len(notes)})
