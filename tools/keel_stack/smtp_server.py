"""A mail server for the embedded stack, run by Debian's python3 (python3-aiosmtpd): SMTP on loopback that
requires STARTTLS before AUTH and AUTH before mail, and keeps each message it accepts as one file in a spool
directory (written under a temporary name, then renamed), where tests and the demo read it.

    /usr/bin/python3 smtp_server.py --port N --cert C --key K --user U --password-file P --spool DIR
"""

import argparse
import asyncio
import os
import ssl
import uuid

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Spool:
    def __init__(self, directory):
        self.directory = directory

    async def handle_DATA(self, server, session, envelope):  # pylint: disable=unused-argument
        name = uuid.uuid4().hex
        temporary = os.path.join(self.directory, "." + name)
        with open(temporary, "wb") as handle:
            handle.write(b"X-Keel-Envelope-From: %s\r\n" % envelope.mail_from.encode())
            handle.write(b"X-Keel-Envelope-To: %s\r\n" % ", ".join(envelope.rcpt_tos).encode())
            handle.write(envelope.original_content)
        os.rename(temporary, os.path.join(self.directory, name + ".eml"))
        return "250 OK: kept as %s" % name


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):  # pylint: disable=unused-argument
        ok = auth_data.login.decode() == user and auth_data.password.decode() == password
        return AuthResult(success=ok, handled=False)
    return check


def main():
    parser = argparse.ArgumentParser()
    for option in ("--port", "--cert", "--key", "--user", "--password-file", "--spool"):
        parser.add_argument(option, required=True)
    args = parser.parse_args()
    with open(args.password_file, encoding="utf-8") as handle:
        password = handle.read().strip()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    controller = Controller(Spool(args.spool), hostname="127.0.0.1", port=int(args.port), server_hostname="localhost",
                            tls_context=context, require_starttls=True, auth_require_tls=True, auth_required=True,
                            authenticator=authenticator(args.user, password))
    controller.start()
    print("smtp listening on 127.0.0.1:%s" % args.port, flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
