"""nx-27017 with SCRAM-SHA-256 users, for tests of credentialed URIs.

nx-27017 speaks the MongoDB wire protocol but has no authentication. This
launcher adds the server side of SCRAM-SHA-256 (RFC 5802 / RFC 7677, as
MongoDB does it: saslStart, saslContinue, saslSupportedMechs in hello) and
refuses every command but the handshake on a connection that has not
authenticated, so a driver given a wrong password, or none, fails the way
it would against a real server.

    python nx_scram.py NX-27017-ARGS...

Users come from the environment: NX_SCRAM_USERS='{"user": "password"}'.
Each successful authentication appends "user" and a newline to
NX_SCRAM_AUTH_LOG, so a test can tell that a client really logged in.
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import threading

from nx_27017 import nx_27017
from nx_27017.handler import NeoSQLiteHandler

USERS = json.loads(os.environ.get("NX_SCRAM_USERS", "{}"))
AUTH_LOG = os.environ.get("NX_SCRAM_AUTH_LOG")
ITERATIONS = 4096
# What a connection may send before it has authenticated.
OPEN = {"hello", "Hello", "ismaster", "isMaster", "saslStart", "saslContinue", "ping", "buildinfo",
        "buildInfo", "endSessions"}

_lock = threading.Lock()
_authenticated = set()  # connection ids
_conversations = {}  # conversation id -> state
_salts = {user: secrets.token_bytes(16) for user in USERS}


def _h(data):
    return hashlib.sha256(data).digest()


def _hmac(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


def _fields(message):
    return dict(part.split("=", 1) for part in message.split(",") if "=" in part)


def _unescape(name):
    return name.replace("=2C", ",").replace("=3D", "=")


def _fail(msg="Authentication failed."):
    return {"ok": 0, "errmsg": msg, "code": 18, "codeName": "AuthenticationFailed"}


def _sasl_start(cmd):
    if cmd.get("mechanism") != "SCRAM-SHA-256":
        return {"ok": 0, "errmsg": "only SCRAM-SHA-256 is supported here", "code": 334,
                "codeName": "MechanismUnavailable"}
    first = bytes(cmd.get("payload", b"")).decode()
    if not first.startswith("n,,"):
        return _fail("channel binding is not supported")
    bare = first[3:]
    f = _fields(bare)
    user = _unescape(f.get("n", ""))
    if user not in USERS:
        return _fail()
    nonce = f["r"] + base64.b64encode(secrets.token_bytes(18)).decode()
    server_first = "r=%s,s=%s,i=%d" % (nonce, base64.b64encode(_salts[user]).decode(), ITERATIONS)
    with _lock:
        cid = len(_conversations) + 1
        _conversations[cid] = {"user": user, "bare": bare, "server_first": server_first, "nonce": nonce,
                               "done": False}
    return {"ok": 1, "conversationId": cid, "done": False, "payload": server_first.encode()}


def _sasl_continue(cmd, conn):
    with _lock:
        conv = _conversations.get(cmd.get("conversationId"))
    if conv is None:
        return _fail("no such SASL conversation")
    if conv["done"]:
        return {"ok": 1, "conversationId": cmd["conversationId"], "done": True, "payload": b""}
    final = bytes(cmd.get("payload", b"")).decode()
    without_proof, _, proof = final.rpartition(",p=")
    if _fields(without_proof).get("r") != conv["nonce"]:
        return _fail()
    salted = hashlib.pbkdf2_hmac("sha256", USERS[conv["user"]].encode(), _salts[conv["user"]], ITERATIONS)
    client_key = _hmac(salted, b"Client Key")
    stored_key = _h(client_key)
    auth_message = ",".join([conv["bare"], conv["server_first"], without_proof]).encode()
    signature = _hmac(stored_key, auth_message)
    try:
        given = base64.b64decode(proof)
    except ValueError:
        return _fail()
    if len(given) != len(signature):
        return _fail()
    recovered = bytes(a ^ b for a, b in zip(given, signature))
    if not hmac.compare_digest(_h(recovered), stored_key):
        return _fail()
    server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
    with _lock:
        conv["done"] = True
        _authenticated.add(conn)
    if AUTH_LOG:
        with open(AUTH_LOG, "a") as log:
            log.write(conv["user"] + "\n")
    done = bool(cmd.get("options", {}).get("skipEmptyExchange", True))
    return {"ok": 1, "conversationId": cmd["conversationId"], "done": done,
            "payload": ("v=" + base64.b64encode(server_signature).decode()).encode()}


def _body(msg):
    for kind, doc in msg.get("sections", []):
        if kind == "body" and isinstance(doc, dict):
            return doc
    return {}


def _guard(original, name):
    def handle(self, msg):
        cmd = _body(msg)
        conn = msg.get("_conn_id")
        first = next(iter(cmd), "")
        if first == "saslStart":
            return msg["request_id"], _sasl_start(cmd)
        if first == "saslContinue":
            return msg["request_id"], _sasl_continue(cmd, conn)
        if first not in OPEN and conn not in _authenticated:
            return msg["request_id"], {"ok": 0, "errmsg": "command %s requires authentication" % first,
                                       "code": 13, "codeName": "Unauthorized"}
        request_id, reply = original(self, msg)
        if first in ("hello", "Hello", "ismaster", "isMaster") and "saslSupportedMechs" in cmd:
            reply = dict(reply)
            reply["saslSupportedMechs"] = ["SCRAM-SHA-256"]
        return request_id, reply

    handle.__name__ = name
    return handle


NeoSQLiteHandler.handle_command = _guard(NeoSQLiteHandler.handle_command, "handle_command")
NeoSQLiteHandler.handle_insert = _guard(NeoSQLiteHandler.handle_insert, "handle_insert")

if __name__ == "__main__":
    sys.argv[0] = "nx-27017"
    sys.exit(nx_27017.main())
