"""An aiosmtpd handler that keeps every message it accepts as files in a directory.

Run as:  PYTHONPATH=tests/support python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c smtp_sink.MessageDir DIR

For each message, DIR/<n>.eml holds the raw message as received and DIR/<n>.json what a test
checks: the envelope (mail_from, rcpt_tos), the decoded Subject, From, To and Message-ID, and the
decoded text/plain and text/html parts. The JSON file is written last (under a temporary name,
then renamed), so a reader that sees it sees both files complete.
"""

import email
import email.policy
import itertools
import json
import os

_counter = itertools.count()


class MessageDir:
    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("smtp_sink.MessageDir takes one argument: the directory")
        return cls(args[0])

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        parts = {}
        for part in message.walk():
            kind = part.get_content_type()
            if kind in ("text/plain", "text/html") and kind not in parts:
                parts[kind] = part.get_content()
        n = f"{os.getpid()}-{next(_counter):06d}"
        base = os.path.join(self.directory, n)
        with open(base + ".eml", "wb") as f:
            f.write(raw)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "subject": str(message.get("subject", "")),
            "from": str(message.get("from", "")),
            "to": str(message.get("to", "")),
            "message_id": str(message.get("message-id", "")),
            "text": parts.get("text/plain", ""),
            "html": parts.get("text/html", ""),
        }
        with open(base + ".json.tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(base + ".json.tmp", base + ".json")
        return "250 Message accepted for delivery"
