from django.contrib import admin
from django.contrib.staticfiles.views import serve as serve_static
from django.urls import path, re_path
from notes import views

urlpatterns = [
    path("", views.index, name="index"),
    path("notes/<int:pk>/", views.detail, name="detail"),
    path("notes/new/", views.new_note, name="new"),
    path("api/notes", views.api_notes, name="api-notes"),
    path("admin/", admin.site.urls),
    # The site serves its own static files (the admin's), as with DEBUG on.
    re_path(r"^static/(?P<path>.*)$", serve_static, {"insecure": True}),
]
