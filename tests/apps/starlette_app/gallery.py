"""A small Starlette site: Jinja2 templates, static files, signed-cookie sessions,
streaming responses. Run with ``riad run gallery:app``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
PICTURES = ["harbour", "lighthouse", "dunes"]


async def home(request: Request) -> Response:
    return templates.TemplateResponse(
        request, "index.html", {"pictures": PICTURES, "visits": _visit(request)}
    )


def _visit(request: Request) -> int:
    visits = int(request.session.get("visits", 0)) + 1
    request.session["visits"] = visits
    return visits


async def picture(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in PICTURES:
        return templates.TemplateResponse(request, "missing.html", {"name": name}, 404)
    return templates.TemplateResponse(request, "picture.html", {"name": name})


async def login(request: Request) -> Response:
    form = await request.form()
    user = str(form.get("user", "")).strip()
    if not user:
        return JSONResponse({"error": "give a user"}, 400)
    request.session["user"] = user
    return RedirectResponse("/me", status_code=303)


async def me(request: Request) -> Response:
    user = request.session.get("user")
    if user is None:
        return JSONResponse({"error": "not logged in"}, 401)
    return JSONResponse({"user": user})


async def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/me", status_code=303)


async def countdown(request: Request) -> Response:
    start = min(int(request.query_params.get("from", "5")), 1000)

    async def lines() -> AsyncIterator[str]:
        for n in range(start, -1, -1):
            yield f"{n}\n"

    return StreamingResponse(lines(), media_type="text/plain")


app = Starlette(
    routes=[
        Route("/", home),
        Route("/pictures/{name}", picture),
        Route("/login", login, methods=["POST"]),
        Route("/me", me),
        Route("/logout", logout, methods=["POST"]),
        Route("/countdown", countdown),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ],
    middleware=[Middleware(SessionMiddleware, secret_key="corpus-not-a-secret", max_age=3600)],
)
