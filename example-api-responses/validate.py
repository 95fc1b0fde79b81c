#!/usr/bin/env python3
"""Consistency check for the example Graph responses.

Checks that every original parses as JSON, that requests.yaml lists exactly the
originals with Graph v1.0 URLs, that paging links carry the id of the requested
resource, that every value in sensitive-values.yaml occurs in some original, and
that every person name / phone number / free-text field in the originals is
covered by sensitive-values.yaml.  Needs PyYAML.  Exit status 1 on any problem.
"""
import glob, json, os, re, sys
import yaml

ROOT = os.path.dirname(os.path.abspath(__file__))
problems = []

def walk(o, key=None, out=None, parent=None):
    """Collect (key, string) pairs; key is None inside internetMessageHeaders / timeZone objects."""
    if isinstance(o, dict):
        for k, v in o.items():
            walk(v, None if parent in ("internetMessageHeaders", "timeZone") else k, out, k)
    elif isinstance(o, list):
        for v in o:
            walk(v, key, out, parent)
    elif isinstance(o, str):
        out.append((key, o))
    return out

docs = {}
for f in sorted(glob.glob(os.path.join(ROOT, "*", "original", "*.json"))):
    try:
        docs[f] = json.load(open(f, encoding="utf-8"))
    except Exception as e:  # noqa
        problems.append(f"{f}: invalid JSON: {e}")

pairs = []
for d in docs.values():
    walk(d, None, pairs)
all_strings = [v for _, v in pairs]

# requests.yaml <-> originals
for conn in sorted(os.listdir(ROOT)):
    cdir = os.path.join(ROOT, conn)
    if not os.path.isdir(os.path.join(cdir, "original")):
        continue
    req = yaml.safe_load(open(os.path.join(cdir, "requests.yaml"), encoding="utf-8"))
    listed = [s["file"] for s in req["samples"]]
    present = sorted(os.listdir(os.path.join(cdir, "original")))
    if sorted(listed) != present:
        problems.append(f"{conn}: requests.yaml files {sorted(listed)} != originals {present}")
    for s in req["samples"]:
        url = s["url"]
        if not url.startswith("https://graph.microsoft.com/v1.0/"):
            problems.append(f"{conn}/{s['file']}: url not Graph v1.0: {url}")
        path = os.path.join(cdir, "original", s["file"])
        doc = docs.get(path)
        if not isinstance(doc, dict) or "@odata.context" not in doc:
            problems.append(f"{conn}/{s['file']}: missing @odata.context")
            continue
        link = doc.get("@odata.nextLink") or doc.get("@odata.deltaLink")
        if "value" in doc and not link:
            problems.append(f"{conn}/{s['file']}: list without nextLink/deltaLink")
        m = re.match(r"https://graph\.microsoft\.com/v1\.0/(users|teams|chats|groups)/([^/?]+)/", url)
        if link and m and m.group(2) not in link:
            problems.append(f"{conn}/{s['file']}: paging link lacks id {m.group(2)}")

sens = yaml.safe_load(open(os.path.join(ROOT, "sensitive-values.yaml"), encoding="utf-8"))
blob = "\n".join(all_strings)
for section, values in sens.items():
    for v in values:
        if str(v) not in blob:
            problems.append(f"sensitive-values.yaml {section}: {v!r} occurs in no original")

# every person-like name is listed in `people`
people = set(sens["people"])
NAME_KEYS = {"displayName", "name", "givenName", "surname", "userDisplayName", "mentionText"}
NOT_PEOPLE = {
    "Platform Engineering", "Project Lighthouse", "Fabrikam Partnership", "SG-Engineering-All", "SRE On-Call",
    "All Sales EMEA", "SG-Finance-Approvers", "General", "Incidents", "Platform leads", "Fabrikam joint rollout",
    "Conf Room Rainier (12)", "Conf Room Aurora (6)", "Kestrel Deploy Bot", "Contoso Reception Bot",
    "svenska (Sverige)", "日本語 (日本)", "Like", "Heart", "Surprised", "Laugh",
    "Lakeside Children's Clinic", "Café Nordlys", "Fabrikam HQ – Boardroom 4", "Serafina Trattoria",
    "Lighthouse pricing rollback runbook.docx", "INC-48213 timeline.xlsx",
}
for key, v in pairs:
    if key in NAME_KEYS and v and v not in people and v not in NOT_PEOPLE and "@" not in v \
            and not v.startswith("https://") and v not in sens["phones"] and not (key == "displayName" and "; https://" in v):
        problems.append(f"name not in people: {key}={v!r}")

# every phone-looking string is listed
phones = set(sens["phones"])
for v in all_strings:
    for m in re.findall(r"\+\d[\d \-]{6,}\d", v):
        if m not in phones and not (v.endswith(m) and any(p.startswith(m) for p in phones)):  # cut-off preview
            problems.append(f"phone not in phones: {m!r}")

# every free-text field contains at least one listed phrase or name
TEXT_KEYS = {"subject", "bodyPreview", "topic", "description", "aboutMe", "content",
             "internalReplyMessage", "externalReplyMessage"}
MEETING_ONLY = re.compile(r"^(re: |fw: )?(1:1|weekly sync|daily standup|sprint retro|focus time|out of office|lunch)?$", re.I)
TEAM_NAME_ONLY = {"Weekly sync - Platform"}  # only a meeting word plus a team name
covers = list(sens["text"]) + list(sens["people"])
for key, v in pairs:
    if key not in TEXT_KEYS or not v.strip() or MEETING_ONLY.match(v.strip()) or v in TEAM_NAME_ONLY:
        continue
    if v.startswith("data:text/html") or v in ("<systemEventMessage/>",) or re.fullmatch(r'<attachment id="[^"]+"></attachment>', v):
        continue
    if not any(c in v for c in covers):
        plain = re.sub(r"<[^>]+>", " ", v)
        if re.search(r"Microsoft Teams meeting", plain) and not re.sub(r"[\s_]", "", plain.split("Microsoft Teams meeting")[0]):
            continue  # body is only the Teams join block
        problems.append(f"free text without a listed phrase: {key}={v[:80]!r}")

for p in problems:
    print(p)
print(f"{len(docs)} originals, {sum(len(v) for v in sens.values())} sensitive values, {len(problems)} problems")
sys.exit(1 if problems else 0)
