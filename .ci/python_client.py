"""Generates the Python client from openapi/openapi.json with openapi-python-client, checks that
every operation of the spec is in it, then drives the real server through it: a guest session, a
message, the history, a signup that migrates the guest, and the account's messages.

Usage: python .ci/python_client.py <path to the genesis binary>
Needs: openapi-python-client and python-dateutil (installed by .ci/run in a virtualenv).
"""

import importlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPEC = ROOT / "openapi" / "openapi.json"


def generate(out: pathlib.Path) -> pathlib.Path:
    config = out / "config.yaml"
    config.write_text("post_hooks: []\n")
    package = out / "genesis_client"
    subprocess.run(
        [
            "openapi-python-client", "generate", "--path", str(SPEC), "--meta", "none",
            "--output-path", str(package), "--config", str(config), "--fail-on-warning",
        ],
        check=True,
    )
    return package


def check_operations(package: pathlib.Path) -> None:
    spec = json.loads(SPEC.read_text())
    missing = []
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            op = operation["operationId"]
            if not list(package.glob(f"api/*/{op}.py")):
                missing.append(f"{method.upper()} {path} ({op})")
    if missing:
        sys.exit("operations missing from the generated client: " + ", ".join(missing))
    print(f"every operation of the spec is in the client ({sum(map(len, spec['paths'].values()))})")


def start_server(binary: str, data_dir: str) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, GENESIS__DATA_DIR=data_dir, GENESIS__SERVER__BIND="127.0.0.1:0")
    for name in ("DATABASE_URL", "REDIS_URL", "UPSTASH_REDIS_URL"):
        env.pop(name, None)
    server = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.PIPE, text=True)
    first = server.stdout.readline()  # "genesis listening on http://127.0.0.1:PORT"
    return server, first.split()[-1]


def drive(base: str) -> None:
    client_mod = importlib.import_module("genesis_client")
    api = "genesis_client.api."
    models = importlib.import_module("genesis_client.models")
    create_session = importlib.import_module(api + "guest.create_guest_session")
    post_message = importlib.import_module(api + "guest.post_guest_message")
    get_conversation = importlib.import_module(api + "guest.get_guest_conversation")
    signup = importlib.import_module(api + "auth.signup")
    list_messages = importlib.import_module(api + "conversations.list_messages")

    anonymous = client_mod.Client(base_url=base)
    session = create_session.sync(client=anonymous)
    assert isinstance(session, models.GuestSession), session
    guest = client_mod.AuthenticatedClient(
        base_url=base, token=session.guest_token, prefix="", auth_header_name="X-Guest-Token"
    )
    ack = post_message.sync(
        session.guest_id,
        client=guest,
        body=models.NewGuestMessage(role=models.Role.USER, content="Hello from Python"),
    )
    assert isinstance(ack, models.MessageAck) and ack.sequence == 1, ack
    history = get_conversation.sync(session.guest_id, client=guest)
    assert isinstance(history, models.GuestConversation), history
    assert [m.content for m in history.messages] == ["Hello from Python"]
    assert history.messages[0].role == models.Role.USER
    assert history.messages[0].timestamp.tzinfo is not None

    refused = get_conversation.sync(session.guest_id, client=anonymous)
    assert isinstance(refused, models.ErrorBody), refused
    assert refused.error.code == models.ErrorCode.GUEST_TOKEN_REQUIRED, refused

    account = signup.sync(
        client=anonymous,
        body=models.Credentials(
            email="python@example.com",
            password="correct horse",
            guest_id=session.guest_id,
            guest_token=session.guest_token,
        ),
    )
    assert isinstance(account, models.AuthSession), account
    user = client_mod.AuthenticatedClient(base_url=base, token=account.access_token)
    conversation = account.migration.conversation_ids[0]
    page = list_messages.sync(conversation, client=user)
    assert isinstance(page, models.MessageList), page
    assert [m.content for m in page.messages] == ["Hello from Python"]
    print("the generated client drove guest chat, signup with migration and account reads")


def main() -> None:
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp)
        package = generate(out)
        check_operations(package)
        sys.path.insert(0, str(out))
        server, base = start_server(binary, str(out / "data"))
        try:
            drive(base)
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
