#!/usr/bin/env python3
"""Derives each connector's `clear-ids` variant from its default rule file.

The clear-ids variant keeps Graph ids in clear: it drops every `tokenize`
transform (ids, ids inside paging links, $skiptoken values) and accepts raw
Graph ids where the default variant requires `p~` tokens. Everything else —
the response allowlists (`responseSchema`), what is reduced and what is
pseudonymized — is copied unchanged; a test checks the transforms.

Run after editing a default rule file:  python3 rules/make-clear-ids.py
"""
import pathlib
import re

HERE = pathlib.Path(__file__).parent
GUID = '"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"'
RAW_ID = {
    "userId": GUID,
    "chatId": '"^19(:|%3[aA])[A-Za-z0-9_.@%-]+$"',
    "meetingId": '"^[A-Za-z0-9_=-]+$"',
}


def derive(text: str) -> str:
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("      - !<tokenize>"):
            skipping = True
            continue
        if skipping and (line.startswith("        ") or not line.strip()):
            continue
        skipping = False
        m = re.match(r"^(\s+)(userId|chatId|meetingId): \{ format: reversible-pseudonym \}\s*$", line)
        if m:
            line = f"{m.group(1)}{m.group(2)}: {{ pattern: {RAW_ID[m.group(2)]} }}\n"
        out.append(line)
    text = "".join(out)
    text = text.replace("  variant: default\n", "  variant: clear-ids\n", 1)
    text = re.sub(
        r"^# Variant `default`:.*?(?=^#\n)",
        "# Variant `clear-ids`: generated from the default variant by\n"
        "# `rules/make-clear-ids.py` -- do not edit by hand. Graph ids leave Veil in\n"
        "# clear and per-user paths take raw Graph ids; everything else is as in\n"
        "# the default variant.\n",
        text,
        count=1,
        flags=re.S | re.M,
    )
    text = text.replace("by its p~ token", "by its Graph id").replace("by the chat's p~ token", "by its Graph id")
    return text


for src in sorted(HERE.glob("*.yaml")):
    if src.name.endswith(".clear-ids.yaml"):
        continue
    dst = src.with_name(src.stem + ".clear-ids.yaml")
    dst.write_text(derive(src.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {dst.relative_to(HERE.parent)}")
