#!/usr/bin/env python3
"""Derives every shipped rule variant from the connector's default rule file.

- `<connector>.clear-ids.yaml` (variant `clear-ids`): Graph ids stay in
  clear. Every `tokenize` transform of ids (plain, or inside paging links)
  is dropped -- but not the one of Graph's `$skiptoken`, which embeds the
  last page's UPN -- and per-user paths accept raw Graph ids where the
  default variant requires `p~` tokens. Everything else -- the response
  allowlists (`responseSchema`), what is reduced and what is pseudonymized --
  is copied unchanged; a test checks the transforms.
- `<connector>.no-groups.yaml` (variant `no-groups`, for the connectors in
  NO_GROUPS): the default variant without any `/v1.0/groups` endpoint and
  without the `GroupMember.Read.All` permission, for tenants that do not
  grant the directory's groups to the mail or calendar connector.
- `<connector>.clear-ids-no-groups.yaml` (variant `clear-ids-no-groups`):
  both at once.

Run after editing a default rule file:  python3 rules/make-variants.py
Check that the committed variants are up to date (a test does):
    python3 rules/make-variants.py --check
"""
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).parent
GUID = '"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"'
RAW_ID = {
    "userId": GUID,
    "chatId": '"^19(:|%3[aA])[A-Za-z0-9_.@%-]+$"',
    "meetingId": '"^[A-Za-z0-9_=-]+$"',
}
# Connectors that read groups only to resolve mailing lists among recipients
# or attendees, and so can do without them.
NO_GROUPS = ["outlook-mail", "outlook-cal", "outlook-mail-received"]
GENERATED = (".clear-ids.yaml", ".no-groups.yaml", ".clear-ids-no-groups.yaml")


def set_variant(text: str, variant: str, header: str) -> str:
    text = re.sub(r"^  variant: [a-z-]+\n", f"  variant: {variant}\n", text, count=1, flags=re.M)
    return re.sub(
        r"^# Variant `[a-z-]+`:.*?(?=^#\n)",
        header,
        text,
        count=1,
        flags=re.S | re.M,
    )


def reanchor(text: str, source: str) -> str:
    """Re-defines YAML anchors whose definition was in a dropped part: the
    first alias of each becomes the anchor with its value from `source`."""
    values = {}
    for line in source.splitlines():
        for name, value in re.findall(r"&([A-Za-z0-9_-]+) (.+?)\s*$", line):
            values.setdefault(name, value)
    defined, out = set(), []
    for line in text.splitlines(keepends=True):
        defined.update(re.findall(r"&([A-Za-z0-9_-]+)", line))
        for name in re.findall(r"\*([A-Za-z0-9_-]+)", line):
            if name not in defined and name in values:
                line = line.replace(f"*{name}", f"&{name} {values[name]}", 1)
                defined.add(name)
        out.append(line)
    return "".join(out)


def clear_ids(text: str) -> str:
    source = text
    out, block = [], None
    for line in text.splitlines(keepends=True):
        if line.startswith("      - !<tokenize>"):
            block = [line]
            continue
        if block is not None and (line.startswith("        ") or not line.strip()):
            block.append(line)
            continue
        if block is not None:
            # Graph's directory $skiptoken embeds the last UPN and object id:
            # it stays a p~ token in every variant.
            if any("skiptoken" in b for b in block if b.strip().startswith("regex:")):
                out.extend(block)
            block = None
        # `{ format: reversible-pseudonym, kind: user }` (the kind is
        # optional): the clear-ids variant takes the raw Graph id instead.
        m = re.match(
            r"^(\s+)(userId|chatId|meetingId): \{ format: reversible-pseudonym(, kind: [a-z]+)? \}\s*$",
            line,
        )
        if m:
            line = f"{m.group(1)}{m.group(2)}: {{ pattern: {RAW_ID[m.group(2)]} }}\n"
        out.append(line)
    if block is not None and any("skiptoken" in b for b in block if b.strip().startswith("regex:")):
        out.extend(block)  # the file ends with that block
    text = set_variant(
        reanchor("".join(out), source),
        "clear-ids",
        "# Variant `clear-ids`: generated from the default variant by\n"
        "# `rules/make-variants.py` -- do not edit by hand. Graph ids leave Veil in\n"
        "# clear and per-user paths take raw Graph ids; everything else is as in\n"
        "# the default variant.\n",
    )
    return text.replace("by its p~ token", "by its Graph id").replace("by the chat's p~ token", "by its Graph id")


def no_groups(text: str, base: str) -> str:
    """Drops every `/v1.0/groups` endpoint and the groups permission."""
    out, skipping = [], False
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("  - path"):
            skipping = bool(re.match(r"^  - pathTemplate: /v1\.0/groups(/|$|\n)", line))
        if line.startswith("    - permission: GroupMember.Read.All"):
            # the permission and its `why:` line
            i += 2
            continue
        if not skipping:
            out.append(line)
        i += 1
    text = reanchor("".join(out), text)
    assert "/v1.0/groups" not in re.sub(r"^\s*#.*$", "", text, flags=re.M), "a groups endpoint is left"
    variant = "no-groups" if base == "default" else "clear-ids-no-groups"
    ids = (
        "Graph object ids of people leave Veil as\n# reversible `p~` tokens, as in the default variant."
        if base == "default"
        else "Graph ids leave Veil in clear, as in the\n# clear-ids variant."
    )
    text = set_variant(
        text,
        variant,
        f"# Variant `{variant}`: generated from the {base} variant by\n"
        "# `rules/make-variants.py` -- do not edit by hand. No `/v1.0/groups`\n"
        "# endpoint at all, and no `GroupMember.Read.All` permission: mailing lists\n"
        f"# among addresses stay unresolved. {ids}\n",
    )
    return text.replace(" to enumerate users and groups.", " to enumerate users.")


CHECK = sys.argv[1:] == ["--check"]
STALE = []


def write(dst: pathlib.Path, text: str) -> None:
    name = dst.relative_to(HERE.parent)
    if CHECK:
        if not dst.is_file() or dst.read_text(encoding="utf-8") != text:
            STALE.append(str(name))
        return
    dst.write_text(text, encoding="utf-8")
    print(f"wrote {name}")


for src in sorted(HERE.glob("*.yaml")):
    if src.name.endswith(GENERATED):
        continue
    connector = src.stem
    default = src.read_text(encoding="utf-8")
    clear = clear_ids(default)
    write(src.with_name(f"{connector}.clear-ids.yaml"), clear)
    if connector in NO_GROUPS:
        write(src.with_name(f"{connector}.no-groups.yaml"), no_groups(default, "default"))
        write(src.with_name(f"{connector}.clear-ids-no-groups.yaml"), no_groups(clear, "clear-ids"))

if STALE:
    sys.exit("out of date (run python3 rules/make-variants.py): " + ", ".join(STALE))
