"""A small Flask (WSGI) application: blueprints, Jinja2 templates, JSON, a file
upload, ``send_file``, a streamed response. Run with ``riad run bookshelf:app``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    jsonify,
    render_template,
    request,
    send_file,
    stream_with_context,
    url_for,
)

HERE = Path(__file__).resolve().parent
BOOKS = {
    1: {"id": 1, "title": "The Left Hand of Darkness", "author": "Ursula K. Le Guin"},
    2: {"id": 2, "title": "Solaris", "author": "Stanisław Lem"},
}

pages = Blueprint("pages", __name__)
api = Blueprint("api", __name__, url_prefix="/api")


@pages.route("/")
def index() -> str:
    return render_template("index.html", books=sorted(BOOKS.values(), key=lambda b: b["id"]))


@pages.route("/books/<int:book_id>")
def book(book_id: int) -> str:
    if book_id not in BOOKS:
        abort(404)
    return render_template("book.html", book=BOOKS[book_id])


@pages.route("/manual")
def manual() -> Response:
    return send_file(HERE / "files" / "manual.txt", mimetype="text/plain", etag=True)


@pages.route("/catalogue.csv")
def catalogue() -> Response:
    def rows() -> Iterator[str]:
        yield "id,title\n"
        for n in range(1, int(request.args.get("rows", "3")) + 1):
            yield f"{n},book {n}\n"

    return Response(stream_with_context(rows()), mimetype="text/csv")


@api.get("/books")
def list_books() -> Response:
    return jsonify(sorted(BOOKS.values(), key=lambda b: b["id"]))


@api.get("/books/<int:book_id>")
def get_book(book_id: int) -> Response:
    if book_id not in BOOKS:
        abort(404)  # answered by the blueprint's own handler, in JSON
    return jsonify(BOOKS[book_id])


@api.post("/books")
def add_book() -> tuple[Response, int]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or not data.get("title") or not data.get("author"):
        return jsonify(error="give a title and an author"), 400
    new_id = max(BOOKS) + 1
    BOOKS[new_id] = {"id": new_id, "title": str(data["title"]), "author": str(data["author"])}
    response = jsonify(BOOKS[new_id])
    response.headers["location"] = url_for("pages.book", book_id=new_id)
    return response, 201


@api.post("/covers")
def upload_cover() -> Response | tuple[Response, int]:
    cover = request.files.get("cover")
    if cover is None or not cover.filename:
        return jsonify(error="no cover file"), 400
    data = cover.read()
    return jsonify(
        filename=cover.filename,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        book=request.form.get("book", ""),
    )


@api.get("/whoami")
def whoami() -> Response:
    environ = request.environ
    return jsonify(
        remote_addr=request.remote_addr,
        scheme=request.scheme,
        script_name=environ["SCRIPT_NAME"],
        path_info=environ["PATH_INFO"],
        url=request.url,
    )


@api.errorhandler(404)
def api_not_found(error: Exception) -> tuple[Response, int]:
    return jsonify(error="not found"), 404


app = Flask(__name__)
app.register_blueprint(pages)
app.register_blueprint(api)
