"""An SMTP server for modelwatch's tests: aiosmtpd receiving on 127.0.0.1:PORT and writing
each message, parsed with Python's email package, as one JSON file into DIR:
{"mail_from", "rcpt_tos", "subject", "content_type", "parts": [{"content_type", "body"}],
 "tls": the TLS version the message came over, or null}.
Usage: python smtp_sink.py PORT DIR [starttls|tls CERT KEY]
With starttls the server requires STARTTLS before MAIL; with tls it speaks TLS from the
first byte (implicit TLS). CERT and KEY are PEM files.
"""
import asyncio
import email
import email.policy
import json
import os
import ssl
import sys
import uuid

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = directory

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = []
        for part in message.walk():
            if part.is_multipart():
                continue
            parts.append({
                "content_type": part.get_content_type(),
                "body": part.get_content(),
            })
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(message["subject"]),
            "content_type": message.get_content_type(),
            "parts": parts,
            "tls": tls_version(server),
        }
        name = os.path.join(self.directory, uuid.uuid4().hex)
        with open(name + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(name + ".tmp", name + ".json")
        return "250 OK"


def tls_version(server):
    ssl_object = server.transport.get_extra_info("ssl_object")
    return ssl_object.version() if ssl_object is not None else None


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    options = {}
    if len(sys.argv) > 3:
        mode, cert, key = sys.argv[3], sys.argv[4], sys.argv[5]
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        if mode == "starttls":
            options = {"tls_context": context, "require_starttls": True}
        elif mode == "tls":
            options = {"ssl_context": context}
        else:
            sys.exit(f"unknown mode {mode!r}")
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port, **options)
    controller.start()
    print("ready", flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
