"""What the test servers (and the sandbox's load generator) share: the HTTP server they
serve on, how they write an answer, and how they learn that the process that started them
is gone. Standard library only; the scripts import it from their own directory.
"""
import http.server
import json
import os
import signal
import socketserver
import stat
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, no access log on stderr, one write per answer and no Nagle
    (else each answer waits out a delayed ACK, 40 ms)."""
    protocol_version = "HTTP/1.1"
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def reply(self, status, doc):
        answer(self, status, doc)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def server_bind(self):
        # HTTPServer's own asks DNS for our name (getfqdn): slow, and nothing needs it
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        # a client that rejects our certificate, or gives up on a slow answer, is what some
        # tests want
        pass


def answer(handler, status, body, content_type="application/json", headers=()):
    """Writes one whole answer: body is bytes, or a document sent as JSON."""
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for h, v in headers:
        handler.send_header(h, v)
    handler.end_headers()
    handler.wfile.write(body)


def tls_server(ctx, handler):
    """A Server on a free loopback port that speaks TLS with ctx."""
    srv = Server(("127.0.0.1", 0), handler)
    # the handshake happens in the handler's thread, so one stuck client cannot block accept()
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    return srv


def exit_when_stdin_closes():
    """The test that started us holds our stdin: when it closes, that test is gone."""
    def watch():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def serve_with_control(api, control_handler, *background):
    """Prints "port N" and "control N", serves control_handler on a second loopback port and
    each of background in a thread of its own, and api until stdin closes."""
    control = Server(("127.0.0.1", 0), control_handler)
    print("port", api.server_address[1], flush=True)
    print("control", control.server_address[1], flush=True)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    for target in background:
        threading.Thread(target=target, daemon=True).start()
    exit_when_stdin_closes()
    api.serve_forever()


def stop_on_owner_exit(stop):
    """Sets the event stop on SIGTERM or SIGINT, and when stdin closes if stdin is a pipe,
    FIFO, socket or terminal (the process that started us went away)."""
    def watch():
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        stop.set()

    try:
        mode = os.fstat(0).st_mode
        owned = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(0)
    except OSError:
        owned = False
    # /dev/null or a file (a background job) gives EOF at once: that is no owner going away
    if owned:
        threading.Thread(target=watch, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())


# Byte offsets at which clients are known (or suspected) to cut a remote message.
ECHO_CUTS = (200, 299, 400, 512, 690, 768, 1024, 2048)


def echo_text(auth, what="request"):
    """A careless server's message quoting the credential back, longer than any cut.

    It holds the Authorization header as received and, at each offset of
    ECHO_CUTS, the bare credential placed so that the offset falls in its
    middle: a client that cuts before scrubbing leaves half of it.
    """
    auth = auth or ""
    tok = auth.split(" ", 1)[1] if " " in auth else auth
    s = f"{what} refused, it had Authorization: {auth}; credential "
    for cut in ECHO_CUTS:
        start = cut - len(tok) // 2
        if tok and start - 1 > len(s):
            s += "." * (start - 1 - len(s)) + " " + tok
    return s + " (end of echo)"
