"""kb_run's wait for its servers: a web server that sends plain HTTP to HTTPS (KB_HTTPS) is up all the same."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kb.platform.management.commands.kb_run import Command


class Answering(BaseHTTPRequestHandler):
    def do_GET(self):
        status = {"/ok": 200, "/redirect": 301, "/broken": 500}[self.path]
        self.send_response(status)
        self.send_header("Location", "https://127.0.0.1:1/unreachable")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Answering)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_a_redirect_to_https_counts_as_answering_and_is_not_followed(server):
    assert Command._answers(f"{server}/ok")
    assert Command._answers(f"{server}/redirect")  # followed, it would fail on the HTTPS port nobody serves
    assert not Command._answers(f"{server}/broken")
    assert not Command._answers("http://127.0.0.1:1/")
