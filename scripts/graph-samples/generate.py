#!/usr/bin/env python3
"""Generate all-properties Graph v1.0 samples with planted personal data.

For every endpoint of the shipped rule files (rules/<connector>.yaml), this
writes a Graph-shaped JSON response that carries EVERY property of the
resource type(s) the endpoint returns, as Microsoft publishes them, with
realistic and unique personal data planted in every property that can hold
it. The leak test (tests/all_properties.rs) sanitizes each sample with the
rules and fails if any planted value survives.

The type information comes from Microsoft's generated Python SDK
(`msgraph-sdk`, pinned in requirements.txt): the source of each model class
in `msgraph/generated/models/**.py` states every property
(`get_field_deserializers`), its type, whether it is a collection, the
members of enums, the base class, and the derived types Graph may return
(`create_from_discriminator_value`, keyed by `@odata.type`). The source is
read as text, never imported, so the output depends only on the SDK
version.

Outputs, per connector, in example-api-responses/<connector>/all-properties/:
  <name>.json     one response per endpoint (and per allowed $expand)
  requests.yaml   file -> Graph URL as sent upstream (real ids)
  planted.json    every planted value with its JSON path and kind

Deterministic: the same SDK version gives byte-identical output.

Usage:
  python3 -m venv /tmp/venv-graph
  /tmp/venv-graph/bin/pip install -r scripts/graph-samples/requirements.txt
  /tmp/venv-graph/bin/python scripts/graph-samples/generate.py
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from collections import OrderedDict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GRAPH = "https://graph.microsoft.com/v1.0"
MAX_DEPTH = 6  # nesting bound for complex types (self-referencing types stop here)

# --------------------------------------------------------------------------
# Reading the SDK's model classes
# --------------------------------------------------------------------------

FIELD_RE = re.compile(
    r'^\s*"(?P<json>[^"]+)": lambda n : setattr\(self, \'[a-z0-9_]+\', '
    r"n\.(?P<getter>get_[a-z_]+)\((?P<arg>[A-Za-z0-9_]*)\)\),\s*$"
)
CLASS_RE = re.compile(r"^class (?P<cls>[A-Za-z0-9_]+)\((?P<bases>[^)]*)\):", re.M)
ENUM_MEMBER_RE = re.compile(r'^\s+[A-Za-z0-9_]+ = "(?P<v>[^"]*)",?\s*$', re.M)
IMPORT_RE = re.compile(r"^\s*from (?P<mod>\.+[A-Za-z0-9_.]*) import (?P<cls>[A-Za-z0-9_]+)\s*$")
MAPPING_RE = re.compile(
    r'mapping_value\.casefold\(\) == "(?P<name>#microsoft\.graph\.[A-Za-z0-9_.]+)"\.casefold\(\):\s*\n'
    r"\s*from (?P<mod>\.+[A-Za-z0-9_.]*) import (?P<cls>[A-Za-z0-9_]+)"
)

PRIMITIVE = {
    "get_str_value": "str",
    "get_bool_value": "bool",
    "get_int_value": "int",
    "get_float_value": "float",
    "get_datetime_value": "datetime",
    "get_date_value": "date",
    "get_time_value": "time",
    "get_timedelta_value": "duration",
    "get_uuid_value": "uuid",
    "get_bytes_value": "bytes",
}


def models_dir() -> str:
    import importlib.util

    spec = importlib.util.find_spec("msgraph")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("msgraph-sdk is not installed: pip install -r scripts/graph-samples/requirements.txt")
    return os.path.join(list(spec.submodule_search_locations)[0], "generated", "models")


def sdk_version() -> str:
    from importlib.metadata import version

    return version("msgraph-sdk")


def resolve(pkg: str, rel: str) -> str:
    """Module key of a relative import `rel` made from package `pkg` ('' = models)."""
    dots = len(rel) - len(rel.lstrip("."))
    parts = pkg.split(".") if pkg else []
    if dots > 1:
        parts = parts[: len(parts) - (dots - 1)]
    rest = rel[dots:]
    return ".".join(parts + ([rest] if rest else []))


def camel(snake: str) -> str:
    head, *tail = snake.split("_")
    return head + "".join(t[:1].upper() + t[1:] for t in tail)


def load_models(base: str | None = None) -> dict:
    """Module key -> model description, for every model of the SDK."""
    base = base or models_dir()
    models: dict = {}
    names: dict = {}  # module key -> '#microsoft.graph.x' from discriminator mappings
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("__"))
        pkg = os.path.relpath(dirpath, base).replace(os.sep, ".")
        pkg = "" if pkg == "." else pkg
        for fn in sorted(filenames):
            if not fn.endswith(".py") or fn == "__init__.py":
                continue
            key = (pkg + "." if pkg else "") + fn[:-3]
            with open(os.path.join(dirpath, fn), encoding="utf-8") as fh:
                src = fh.read()
            m = CLASS_RE.search(src)
            if not m:
                continue
            bases = [b.strip() for b in m.group("bases").split(",")]
            imports = {m.group("cls"): key}
            for line in src.splitlines():
                im = IMPORT_RE.match(line)
                if im:
                    imports[im.group("cls")] = resolve(pkg, im.group("mod"))
            if "Enum" in bases:
                models[key] = {
                    "key": key,
                    "enum": [v for v in ENUM_MEMBER_RE.findall(src)],
                }
                continue
            fields = []
            in_fields = False
            for line in src.splitlines():
                if "fields: dict[str, Callable[[Any], None]] = {" in line:
                    in_fields = True
                    continue
                if in_fields:
                    if line.strip() == "}":
                        break
                    fm = FIELD_RE.match(line)
                    if not fm:
                        raise SystemExit(f"{key}: cannot read field line: {line.strip()}")
                    getter, arg = fm.group("getter"), fm.group("arg")
                    jname = fm.group("json")
                    if getter in PRIMITIVE:
                        fields.append((jname, PRIMITIVE[getter], None, False))
                    elif getter == "get_collection_of_primitive_values":
                        prim = {"str": "str", "int": "int", "float": "float", "bool": "bool", "UUID": "uuid",
                                "datetime": "datetime"}.get(arg, "str")
                        fields.append((jname, prim, None, True))
                    elif getter in ("get_enum_value", "get_collection_of_enum_values"):
                        fields.append((jname, "enum", imports[arg], getter.startswith("get_collection")))
                    elif getter in ("get_object_value", "get_collection_of_object_values"):
                        fields.append((jname, "object", imports[arg], getter.startswith("get_collection")))
                    else:
                        raise SystemExit(f"{key}: unknown getter {getter}")
            for mm in MAPPING_RE.finditer(src):
                names.setdefault(resolve(pkg, mm.group("mod")), mm.group("name"))
            parent = None
            for b in bases:
                if b in imports:
                    parent = imports[b]
                    break
            models[key] = {
                "key": key,
                "cls": m.group("cls"),
                "parent": parent,
                "own_fields": [f for f in fields if f[0] != "@odata.type"],
                "subs": [],
            }
    for key, m in models.items():
        if "enum" in m:
            continue
        pkg, _, leaf = key.rpartition(".")
        ns = "".join("." + camel(p) for p in pkg.split(".")) if pkg else ""
        m["odata"] = names.get(key, f"#microsoft.graph{ns}.{camel(leaf)}")
        if m["parent"] in models:
            models[m["parent"]]["subs"].append(key)
    for key, m in models.items():
        if "enum" in m:
            continue
        chain, p = [], key
        while p:
            chain.append(p)
            p = models[p]["parent"] if p in models else None
        m["entity"] = "entity" in chain
        # All properties: own first, then inherited (as Graph lists them: base first).
        seen, fields = set(), []
        for c in reversed(chain):
            for f in models[c]["own_fields"]:
                if f[0] not in seen:
                    seen.add(f[0])
                    fields.append(f)
        m["fields"] = fields
    return models


def by_name(models: dict) -> dict:
    """'microsoft.graph.user' -> module key."""
    return {m["odata"].lstrip("#"): k for k, m in models.items() if "odata" in m}


def descendants(models: dict, key: str) -> list:
    out = []
    for s in sorted(models[key]["subs"]):
        out.append(s)
        out.extend(descendants(models, s))
    return out


# --------------------------------------------------------------------------
# Planted values
# --------------------------------------------------------------------------

FIRST = ["Ann", "Bartosz", "Chiamaka", "Dmitri", "Esperanza", "Farid", "Greta", "Hiroshi", "Ingrid", "Jamal",
         "Katarzyna", "Luca", "Mei", "Nikolai", "Oluwaseun", "Pilar", "Quentin", "Rania", "Sven", "Tamsin",
         "Ulrike", "Vikram", "Wanjiru", "Xavier", "Yasmin", "Zoltan"]
LAST = ["Lindqvist", "Okonkwo", "Haddad", "Kowalczyk", "Nakamura", "Fitzgerald", "Delacroix", "Abernathy",
        "Szabo", "Villanueva", "Oyelaran", "Marchetti", "Thorsen", "Balakrishnan", "Castellanos", "Whitfield",
        "Dubois", "Karlsson", "Mwangi", "Petrov", "Rahimi", "Santoro", "Yilmaz", "Zhukova"]
SENTENCES = [
    "my divorce hearing moved to Friday, please cover the on-call rota",
    "results from the oncology appointment came back, taking leave next week",
    "salary review for the payments team: proposed raise attached",
    "call me on my private number about the disciplinary meeting",
    "the landlord at 17 Rosewood Lane is threatening eviction again",
    "pregnancy announcement to the team after the scan on Monday",
    "union meeting minutes and the list of members who signed",
    "performance improvement plan draft for the new analyst",
    "therapy sessions on Wednesdays, block my calendar please",
    "visa renewal documents and passport scan for the relocation",
]
TENANT = "9c4e8a12-3f5b-4d7e-b1a6-0e2f7c9d5b38"
DOMAIN = "contoso.example"


def guid(seed: str) -> str:
    h = hashlib.sha256(seed.encode()).hexdigest()
    return f"{h[0:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:32]}"


class Planter:
    """Makes unique personal values and records where each one went."""

    def __init__(self):
        self.n = 0
        self.entries: list = []  # per connector, reset by start()

    def start(self, base: int):
        """Per connector: its own range of markers, so a change to one connector leaves the others as they are."""
        self.entries = []
        self.n = base

    def _next(self) -> int:
        self.n += 1
        return self.n

    def person(self, n: int):
        return FIRST[n % len(FIRST)], LAST[(n * 7) % len(LAST)]

    def add(self, value: str, kind: str, path: str, needles=None) -> str:
        needles = sorted(set([value] + [x for x in (needles or []) if x]))
        self.entries.append({"value": value, "kind": kind, "path": path, "needles": needles})
        return value

    def make(self, kind: str, path: str, hint: str = "") -> str:
        n = self._next()
        mk = f"Plant{n:05d}"
        first, last = self.person(n)
        lo = f"{first.lower()}.{last.lower()}.plant{n:05d}"
        if kind == "name":
            return self.add(f"{first} {last} {mk}", kind, path, [mk])
        if kind == "given_name":
            return self.add(f"{first}-{mk}", "name", path, [mk])
        if kind == "surname":
            return self.add(f"{last}-{mk}", "name", path, [mk])
        if kind == "email":
            return self.add(f"{lo}@{DOMAIN}", kind, path, [mk])
        if kind == "smtp":
            return self.add(f"SMTP:{lo}@{DOMAIN}", "email", path, [mk])
        if kind == "x500":
            return self.add(f"x500:/o=ExchangeLabs/ou=Exchange Administrative Group/cn=Recipients/cn={lo}",
                            "identifier", path, [mk])
        if kind == "sip":
            return self.add(f"sip:{lo}@{DOMAIN}", "email", path, [mk])
        if kind == "guest_upn":
            return self.add(f"{lo}_fabrikam.example#EXT#@contoso.onmicrosoft.example", "email", path, [mk])
        if kind == "sharepoint_login":
            return self.add(f"i:0#.f|membership|{lo}@{DOMAIN}", "email", path, [mk])
        if kind == "phone":
            v = f"+1 425 5{n // 10000:02d} {n % 10000:04d}"
            return self.add(v, kind, path, [re.sub(r"\D", "", v)])
        if kind == "quick_dial":
            v = f"+1 425 5{n // 10000:02d} {n % 10000:04d},,{700000000 + n}#"
            return self.add(v, "phone", path, [v.split(",")[0], f"{700000000 + n}"])
        if kind == "tel_id":
            v = f"+14255{n // 10000:02d}{n % 10000:04d}"
            return self.add(v, "phone", path)
        if kind == "person_id":
            return self.add(guid(mk), kind, path)
        if kind == "person_ref":  # a non-GUID id of a person (guest, ACS user)
            return self.add(f"8:acs:{TENANT}_{guid(mk)}", "person_id", path, [guid(mk)])
        if kind == "street":
            return self.add(f"{100 + n % 800} {mk} Rosewood Lane", "address", path, [mk])
        if kind == "city":
            return self.add(f"Bellevue {mk}", "address", path, [mk])
        if kind == "state":
            return self.add(f"WA {mk}", "address", path, [mk])
        if kind == "postal":
            return self.add(f"98{n % 1000:03d}-{mk}", "address", path, [mk])
        if kind == "office":
            return self.add(f"Building 4, desk 2.{n % 100:02d} {mk}", "address", path, [mk])
        if kind == "location":
            return self.add(f"Café Rosa, 17 Pike St, Seattle {mk}", "address", path, [mk])
        if kind == "ip":
            return self.add(f"10.{100 + n // 10000 % 100}.{100 + n // 100 % 100}.{100 + n % 100}", kind, path)
        if kind == "subnet":
            return self.add(f"10.{100 + n // 10000 % 100}.{100 + n // 100 % 100}.{n % 100}/26", "ip", path)
        if kind == "mac":
            v = f"02-50-F2-{n // 65536 % 256:02X}-{n // 256 % 256:02X}-{n % 256:02X}"
            return self.add(v, kind, path, [v.replace("-", ":"), v.replace("-", "")])
        if kind == "device":
            return self.add(f"{first.upper()}-{mk.upper()}-LAPTOP", kind, path, [mk])
        if kind == "device_name":
            return self.add(f"Jabra Evolve2 65 ({first}'s headset {mk})", "device", path, [mk])
        if kind == "user_agent":
            return self.add(f"RTCC/7.0.0.0 UCWA/7.0.0.0 Teams/1.0 (Windows NT 10.0; {first.upper()}-{mk.upper()}-LAPTOP)",
                            "device", path, [mk])
        if kind == "dns_suffix":
            return self.add(f"{first.lower()}-{mk.lower()}.home.example", "network", path, [mk])
        if kind == "secret":
            return self.add(f"{mk}Kx7Q", kind, path, [mk])
        if kind == "meeting_id":
            return self.add(f"{4000000000 + n}", "secret", path)
        if kind == "url_credential":
            style = n % 4
            cred = f"{mk}Kx7Q"
            url = [f"https://contoso.zoom.example/j/8{n:09d}?pwd={cred}",
                   f"https://teams.microsoft.com/meet/2{n:012d}?p={cred}",
                   f"https://contoso.webex.example/contoso/j.php?MTID=m{n:08d}&tk={cred}",
                   f"https://meet.fabrikam.example/r/{n:06d}?passcode={cred}"][style]
            return self.add(url, kind, path, [mk])
        if kind == "join_link":
            oid = guid(mk)
            url = (f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{hashlib.sha256(mk.encode()).hexdigest()[:32]}"
                   f"%40thread.v2/0?context=%7b%22Tid%22%3a%22{TENANT}%22%2c%22Oid%22%3a%22{oid}%22%7d")
            self.add(oid, "person_id", path + " (Oid)")
            return url
        if kind == "options_link":
            oid = guid(mk)
            self.add(oid, "person_id", path + " (organizerId)")
            return (f"https://teams.microsoft.com/meetingOptions/?organizerId={oid}&tenantId={TENANT}"
                    f"&threadId=19_meeting_{hashlib.sha256(mk.encode()).hexdigest()[:24]}@thread.v2&messageId=0&language=en-US")
        if kind == "onedrive":
            return self.add(f"https://contoso-my.sharepoint.example/personal/{lo.replace('.', '_')}_contoso_example/"
                            f"Documents/{mk} {first} salary review.docx", "path", path, [mk])
        if kind == "mysite":
            return self.add(f"https://contoso-my.sharepoint.example/personal/{lo.replace('.', '_')}_contoso_example",
                            "url", path, [mk])
        if kind == "message_id":
            return self.add(f"<{mk}.{lo}@DM6PR11MB{n:04d}.namprd11.prod.outlook.example>", "identifier", path, [mk])
        if kind == "identifier":
            return self.add(f"{first[:1].upper()}{last.upper()}{mk}", kind, path, [mk])
        if kind == "sid":
            return self.add(f"S-1-5-21-1004336348-1177238915-682003330-{100000 + n}", "identifier", path)
        if kind == "dn":
            return self.add(f"CN={first} {last} {mk},OU=Users,OU=Seattle,DC=corp,DC=contoso,DC=example",
                            "identifier", path, [mk])
        if kind == "immutable_id":
            import base64
            return self.add(base64.b64encode(hashlib.sha256(mk.encode()).digest()[:16]).decode(), "identifier", path)
        if kind == "html":
            s = SENTENCES[n % len(SENTENCES)]
            return self.add(f"<html><body><p>Hi {first}, {mk}: {s}. Reach me at +1 425 5{n // 10000:02d} {n % 10000:04d}.</p></body></html>",
                            "text", path, [mk])
        if kind == "card":
            return self.add(json.dumps({"type": "AdaptiveCard", "body": [{"type": "TextBlock",
                            "text": f"{mk} {first} {last}: {SENTENCES[n % len(SENTENCES)]}"}]}),
                            "text", path, [mk])
        if kind == "header":
            return self.add(f"{first} {last} {mk} <{lo}@{DOMAIN}>", "text", path, [mk])
        if kind == "file_name":
            return self.add(f"{mk} {first} {last} medical certificate.pdf", "text", path, [mk])
        # free text
        return self.add(f"{mk} {SENTENCES[n % len(SENTENCES)]}", "text", path, [mk])


# --------------------------------------------------------------------------
# Which string properties hold personal data, and of what kind
# --------------------------------------------------------------------------

# Objects that stand for one person: their `id` is the person's object id and
# their `displayName` is the person's name.
PERSON_TYPES = {
    "user", "agent_user", "org_contact", "teamwork_user_identity", "communications_user_identity",
    "call_records.user_identity", "user_identity", "email_identity", "communications_guest_identity",
    "azure_communication_services_user_identity", "communications_encrypted_identity",
    "communications_phone_identity", "attendance_record", "email_address", "meeting_participant_info",
    "virtual_event_presenter_info", "share_point_identity", "provisioned_identity",
}
# Property name -> planted kind, wherever it appears.
BY_NAME = {
    "mail": "email", "email": "email", "emailAddress": "email", "userPrincipalName": "email", "upn": "email",
    "onPremisesUserPrincipalName": "email", "locationEmailAddress": "email", "notificationEmailAddresses": "email",
    "otherMails": "email", "imAddresses": "sip", "issuerAssignedId": "email", "loginName": "sharepoint_login",
    "businessPhones": "phone", "mobilePhone": "phone", "faxNumber": "phone", "callerNumber": "phone",
    "calleeNumber": "phone", "tollNumber": "phone", "tollFreeNumber": "phone", "tollNumbers": "phone",
    "tollFreeNumbers": "phone", "quickDial": "quick_dial",
    "givenName": "given_name", "surname": "surname", "preferredName": "name", "mentionText": "name",
    "userDisplayName": "name",
    "streetAddress": "street", "street": "street", "city": "city", "postalCode": "postal", "officeLocation": "office",
    "ipAddress": "ip", "reflexiveIPAddress": "ip", "relayIPAddress": "ip", "subnet": "subnet", "macAddress": "mac",
    "basicServiceSetIdentifier": "mac", "dnsSuffix": "dns_suffix",
    "captureDeviceName": "device_name", "renderDeviceName": "device_name", "headerValue": "user_agent",
    "passcode": "secret", "password": "secret", "secretText": "secret", "token": "secret", "hint": "secret",
    "blob": "secret", "joinMeetingId": "meeting_id", "conferenceId": "meeting_id",
    "videoTeleconferenceId": "meeting_id",
    "joinWebUrl": "join_link", "joinUrl": "url_credential", "onlineMeetingUrl": "url_credential",
    "locationUri": "url_credential", "dialinUrl": "url_credential", "moreInfoWebUrl": "url_credential",
    "meetingOptionsWebUrl": "options_link", "contentUrl": "onedrive", "thumbnailUrl": "onedrive",
    "callRecordingUrl": "onedrive", "mySite": "mysite",
    "employeeId": "identifier", "onPremisesSamAccountName": "identifier", "mailNickname": "identifier",
    "certificateUserIds": "identifier", "onPremisesImmutableId": "immutable_id",
    "onPremisesSecurityIdentifier": "sid", "securityIdentifier": "sid", "onPremisesDistinguishedName": "dn",
    "internetMessageId": "message_id", "userId": "person_id",
}
# (owner type, property) -> kind; None = not personal. Checked before BY_NAME.
BY_OWNER = {
    ("email_address", "address"): "email", ("email_address", "name"): "name",
    ("phone", "number"): "phone", ("item_body", "content"): "html",
    ("chat_message_attachment", "content"): "card", ("chat_message_attachment", "name"): "file_name",
    ("internet_message_header", "value"): "header",
    ("call_records.participant_endpoint", "name"): "device", ("device", "displayName"): "device",
    ("location", "displayName"): "location", ("location", "uniqueId"): "location",
    ("location_constraint_item", "displayName"): "location", ("location_constraint_item", "uniqueId"): "location",
    ("communications_phone_identity", "id"): "tel_id", ("communications_guest_identity", "id"): "person_ref",
    ("azure_communication_services_user_identity", "id"): "person_ref",
    ("communications_encrypted_identity", "id"): "person_ref",
    ("on_premises_provisioning_error", "value"): "text",
    ("teamwork_application_identity", "id"): None, ("communications_application_identity", "id"): None,
    ("communications_application_instance_identity", "id"): None, ("service_principal_identity", "id"): None,
    ("teamwork_conversation_identity", "id"): None, ("teamwork_tag_identity", "id"): None,
    ("share_point_group_identity", "id"): None,
}
for _o in ("user", "agent_user", "physical_address", "physical_office_address", "org_contact"):
    BY_OWNER[(_o, "state")] = "state"
for _o in ("locale_info", "chat_message_reaction", "app_role", "permission_scope", "resource_specific_permission",
           "verified_publisher", "key_value", "time_zone_base", "custom_time_zone"):
    for _p in ("displayName", "description", "value", "name"):
        BY_OWNER[(_o, _p)] = None
# Property names that never hold personal data (ids of non-person resources,
# codes, enum-like strings, versions, technical URLs).
NON_PERSONAL = set("""
id etag changeKey locale tenantId timeZone originalStartTimeZone originalEndTimeZone recurrenceTimeZone iCalUId
transactionId conversationId parentFolderId seriesMasterId chatId replyToId channelId teamId threadId messageId
replyChainMessageId callId callChainId correlationId myParticipantId participantId observedParticipantId
sourceParticipantId replacesCallId streamId tabId teamsAppId appId azureADAppId communicationServiceId
azureCommunicationServicesResourceId applicationVersion usageLocation preferredLanguage preferredDataLocation country
countryOrRegion countryCode tenantCountryCode usageCountryCode region languageId language department companyName
employeeType userType ageGroup consentProvidedForMinor legalAgeGroupClassification creationType externalUserState
passwordPolicies onPremisesDomainName onPremisesNetBiosName visibility groupTypes membershipRuleProcessingState
resourceBehaviorOptions resourceProvisioningOptions theme classification dateFormat timeFormat archiveFolder currency
inventoryType licenseCapability operator callType signalingLocation mediaPathLocation trunkFullyQualifiedDomainName
finalSipCodePhrase destinationContext destinationName contentType reactionType wifiMicrosoftDriver
wifiMicrosoftDriverVersion wifiVendorDriver wifiVendorDriverVersion captureDeviceDriver renderDeviceDriver cpuName
spokenLanguage translationLanguages meetingSpokenLanguageTag meetingTemplateId sensitivityLabelId externalId
registrationId role deviceId deviceCategory deviceMetadata deviceOwnership enrollmentProfileName enrollmentType
managementType manufacturer mdmAppId model operatingSystem operatingSystemVersion profileType systemLabels trustType
physicalIds appOwnerOrganizationId applicationTemplateId createdByAppId disabledByMicrosoftStatus
preferredSingleSignOnMode preferredTokenSigningKeyThumbprint servicePrincipalType signInAudience tags
tokenEncryptionKeyId alternativeNames servicePrincipalNames replyUrls homepage loginUrl logoutUrl appDisplayName
appDescription allowedMemberTypes origin type usage keyId skuId servicePlanId disabledPlans service capabilityStatus
provisioningStatus assignedByGroup error state lastSignInRequestId lastNonInteractiveSignInRequestId
lastSuccessfulSignInRequestId identityProvider issuer signInType category propertyCausingError serviceInstance
logoUrl marketingUrl privacyStatementUrl supportUrl termsOfServiceUrl verifiedPublisherId relayState key
costCenter division uniqueName organizationId infoCatalogs webUrl webLink reactionContentUrl complianceUrl
matchedConditionDescriptions callbackUri resourceId uri reason label callTranscriptICalUid meetingChatId
teamsAppDisplayName conversationMemberRoles calendarEventId internalId applicationType identityType principalId
cancelledOccurrences dateTime message tenantKey adminConsentDescription adminConsentDisplayName
userConsentDescription userConsentDisplayName identityParentId agentIdentityBlueprintId managerApplications
""".split())


def is_person(key: str, via: str | None) -> bool:
    return key in PERSON_TYPES or (key == "identity" and via in ("user", "assertedIdentity", "onPremises"))


def classify(owner: str, prop: str, person: bool, via: str | None = None):
    """Kind of personal data a string property of `owner` (reached through `via`) holds, or None."""
    if owner == "identity" and via == "device" and prop == "displayName":
        return "device"
    if (owner, prop) in BY_OWNER:
        return BY_OWNER[(owner, prop)]
    if prop == "id":
        return "person_id" if person else None
    if prop == "displayName":
        return "name" if person else "text"
    if prop in BY_NAME:
        return BY_NAME[prop]
    if prop in NON_PERSONAL or prop.endswith("Id") or prop.endswith("Ids"):
        return None
    return "text"


# --------------------------------------------------------------------------
# Building Graph-shaped objects
# --------------------------------------------------------------------------

IDENTITY_CHOICE = {
    # flavour -> identity-set property -> identity subtype Graph returns there
    "teams": {"user": "teamwork_user_identity", "application": "teamwork_application_identity",
              "recipient": "teamwork_user_identity"},
    "comms": {"user": "communications_user_identity", "application": "communications_application_identity",
              "applicationInstance": "communications_application_instance_identity",
              "azureCommunicationServicesUser": "azure_communication_services_user_identity",
              "encrypted": "communications_encrypted_identity", "guest": "communications_guest_identity",
              "phone": "communications_phone_identity", "identity": "communications_user_identity",
              "onPremises": "communications_user_identity", "assertedIdentity": "communications_phone_identity"},
    "callrecords": {"user": "call_records.user_identity", "application": "communications_application_identity",
                    "applicationInstance": "communications_application_instance_identity",
                    "azureCommunicationServicesUser": "azure_communication_services_user_identity",
                    "encrypted": "communications_encrypted_identity", "guest": "communications_guest_identity",
                    "phone": "communications_phone_identity", "associatedIdentity": "call_records.user_identity",
                    "onPremises": "communications_user_identity",
                    "assertedIdentity": "communications_phone_identity"},
}
# Abstract or base complex types -> the derived type used where one must be chosen.
DEFAULT_SUBTYPE = {
    "media_config": "app_hosted_media_config",
    "meeting_info": "join_meeting_id_meeting_info",
    "call_options": "incoming_call_options",
    "call_records.endpoint": "call_records.participant_endpoint",
}
ENUM_SKIP = {"unknownFutureValue"}
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def child_path(path: str, prop: str) -> str:
    return f"{path}.{prop}" if IDENT.match(prop) else f"{path}['{prop}']"


class Builder:
    def __init__(self, models: dict, planter: Planter):
        self.M = models
        self.P = planter
        self.flavour = "teams"
        self.choice: dict = {}  # declared type or (owner, prop) -> subtype, per sample
        self.seq = 0
        self.rot = 0
        self.ctx_base = GRAPH + "/$metadata#"

    def nonpersonal(self, owner: str, prop: str, t: str, path: str):
        self.seq += 1
        if t == "bool":
            return True
        if t == "int":
            return 3 + self.seq % 7
        if t == "float":
            return 0.25
        if t == "datetime":
            return f"2026-11-0{1 + self.seq % 8}T09:{self.seq % 60:02d}:00Z"
        if t == "date":
            return "2026-11-02"
        if t == "time":
            return "08:30:00.0000000"
        if t == "duration":
            return "PT1M30S"
        if t == "uuid":
            return guid(f"res:{path}:{self.seq}")
        if t == "bytes":
            return "AQID"
        if prop == "tenantId":
            return TENANT
        if prop in ("locale", "language", "preferredLanguage", "languageId", "spokenLanguage",
                    "meetingSpokenLanguageTag", "translationLanguages"):
            return "en-US"
        if prop in ("timeZone", "originalStartTimeZone", "originalEndTimeZone", "recurrenceTimeZone", "name"):
            return "Pacific Standard Time"
        if prop in ("usageLocation", "country", "countryOrRegion", "countryCode", "tenantCountryCode",
                    "usageCountryCode", "region"):
            return "US"
        if prop == "dateTime":
            return "2026-11-02T09:00:00.0000000"
        if prop in ("webUrl", "webLink", "homepage", "loginUrl", "logoutUrl", "replyUrls", "logoUrl", "marketingUrl",
                    "privacyStatementUrl", "supportUrl", "termsOfServiceUrl", "complianceUrl", "reactionContentUrl",
                    "callbackUri", "uri"):
            return f"https://example.contoso.example/{prop}/{self.seq}"
        if prop == "id" or prop.endswith("Id") or prop.endswith("Ids"):
            return guid(f"res:{path}:{self.seq}")
        return f"{prop}-{self.seq}"

    def pick(self, owner: str, prop: str, declared: str) -> str:
        if (owner, prop) in self.choice:
            return self.choice[(owner, prop)]
        if declared in self.choice:
            return self.choice[declared]
        if declared == "identity":
            table = IDENTITY_CHOICE[self.flavour]
            if owner == "attendance_record":
                # Graph: communicationsUserIdentity or azureCommunicationServicesUserIdentity; alternate.
                self.rot += 1
                return ("communications_user_identity", "azure_communication_services_user_identity")[self.rot % 2]
            return table.get(prop, "identity")
        if declared == "identity_set" and self.flavour in ("comms", "callrecords"):
            return "communications_identity_set"
        if declared == "call_records.user_agent":
            return ("call_records.service_user_agent" if owner == "call_records.service_endpoint"
                    else "call_records.client_user_agent")
        return DEFAULT_SUBTYPE.get(declared, declared)

    def strings(self, owner: str, prop: str, person: bool, coll: bool, path: str, t: str, via=None):
        kind = self.choice.get("kinds", {}).get((owner, prop)) or classify(owner, prop, person, via)
        if kind is None:
            v = self.nonpersonal(owner, prop, t, path)
            return [v] if coll else v
        if not coll:
            return self.P.make(kind, path)
        if prop == "proxyAddresses":
            return [self.P.make("smtp", f"{path}[0]"), self.P.make("x500", f"{path}[1]"),
                    self.P.make("sip", f"{path}[2]")]
        return [self.P.make(kind, f"{path}[{i}]") for i in range(2)]

    def enum(self, ref: str, coll: bool):
        vals = [v for v in self.M[ref]["enum"] if v not in ENUM_SKIP] or self.M[ref]["enum"]
        self.seq += 1
        if coll:
            return vals[:2]
        return vals[self.seq % len(vals)]

    def obj(self, key: str, path: str, depth: int = 0, via: str | None = None, declared: str | None = None,
            expand: dict | None = None, odata_type: bool | None = None) -> OrderedDict:
        """Every property of type `key`; navigation properties only when listed in `expand`."""
        m = self.M[key]
        expand = expand or {}
        out = OrderedDict()
        if odata_type or (odata_type is None and declared is not None and key != declared):
            out["@odata.type"] = m["odata"]
        person = is_person(key, via)
        for (prop, t, ref, coll) in m["fields"]:
            p = child_path(path, prop)
            if t == "object":
                r = self.M[ref]
                if r["entity"]:
                    if prop not in expand:
                        continue
                    sub_key, sub_expand, count = expand[prop]
                    if coll:
                        out[f"{prop}@odata.context"] = f"{self.ctx_base}/{prop}"
                        out[prop] = [self.obj(sub_key or ref, f"{p}[{i}]", 0, prop, ref, sub_expand)
                                     for i in range(count)]
                    else:
                        out[prop] = self.obj(sub_key or ref, p, 0, prop, ref, sub_expand, odata_type=True)
                    continue
                if depth >= MAX_DEPTH:
                    out[prop] = None
                    continue
                if coll:
                    sub = self.pick(key, prop, ref)
                    out[prop] = [self.obj(sub, f"{p}[0]", depth + 1, prop, ref)]
                else:
                    sub = self.pick(key, prop, ref)
                    out[prop] = self.obj(sub, p, depth + 1, prop, ref)
            elif t == "enum":
                out[prop] = self.enum(ref, coll)
            elif t == "str":
                out[prop] = self.strings(key, prop, person, coll, p, t, via)
            else:
                v = self.nonpersonal(key, prop, t, p)
                out[prop] = [v] if coll else v
        return out


# --------------------------------------------------------------------------
# Endpoints -> samples
# --------------------------------------------------------------------------

# What a group's members can be: users, groups, contacts, service principals
# and devices, with the derived types of users and service principals that
# the v1.0 model publishes (agent users and agent identities).
MEMBER_TYPES = ["user", "group", "org_contact", "service_principal", "device", "agent_user", "agent_identity",
                "agent_identity_blueprint_principal"]
MESSAGE_TYPES = ["message", "calendar_sharing_message", "event_message", "event_message_request",
                 "event_message_response"]


class Sample:
    def __init__(self, file, endpoint, resource, url, description, build):
        self.file, self.endpoint, self.resource = file, endpoint, resource
        self.url, self.description, self.build = url, description, build


def opaque(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:40]


class Gen:
    def __init__(self, models, planter):
        self.M = models
        self.P = planter
        self.B = Builder(models, planter)
        self.by_name = by_name(models)
        self.url_people: set = set()

    # -- helpers -----------------------------------------------------------
    def person_in_url(self, file: str) -> str:
        """A person's object id used in the request path (planted where it shows in the response)."""
        uid = guid(f"url-person:{file}")
        self.url_people.add(uid)
        return uid

    def single(self, key, context, expand=None, flavour="teams", choice=None, odata_type=False):
        def build():
            self.B.flavour, self.B.choice = flavour, dict(choice or {})
            self.B.ctx_base = context.rsplit("/$entity", 1)[0]
            doc = OrderedDict([("@odata.context", context)])
            doc.update(self.B.obj(key, "$", 0, None, key, expand, odata_type=odata_type))
            return doc
        return build

    def listing(self, items, context, next_link=None, delta_link=None, flavour="teams", expand=None,
                odata_type=False):
        """items: list of (type key, choice dict); `odata_type` marks each item with its type."""
        def build():
            doc = OrderedDict([("@odata.context", context)])
            values = []
            for i, (key, choice) in enumerate(items):
                self.B.flavour, self.B.choice = flavour, dict(choice or {})
                self.B.ctx_base = context
                # Expanded navigation on the first item only: enough to carry every property.
                values.append(self.B.obj(key, f"$.value[{i}]", 0, None, None, expand if i == 0 else None,
                                         odata_type=odata_type))
            if next_link:
                doc["@odata.nextLink"] = next_link() if callable(next_link) else next_link
            if delta_link:
                doc["@odata.deltaLink"] = delta_link
            doc["value"] = values
            return doc
        return build

    def directory_token(self, path: str) -> str:
        """Graph's directory $skiptoken: base64 of the last object's UPN and object id."""
        import base64
        self.P.n += 1
        mk = f"Plant{self.P.n:05d}"
        first, last = self.P.person(self.P.n)
        raw = (f"DSpt\x02\x00\x01\x00\x00\x00@:{first.lower()}.{last.lower()}.{mk.lower()}@{DOMAIN})"
               f"User_{guid(mk)}").encode()
        tok = base64.b64encode(raw).decode().rstrip("=")
        self.P.add(tok, "paging_token", path)
        return tok

    # -- directory, shared by connectors -------------------------------------
    def directory(self, conn: str, which: set) -> list:
        out = []
        uid = self.person_in_url(f"{conn}/user")
        gid = guid(f"group:{conn}")
        if "users" in which:
            out.append(Sample("users.json", "/v1.0/users", "microsoft.graph.user (collection)",
                              f"{GRAPH}/users?$top=2",
                              "a member and a B2B guest (#EXT# UPN), every property; the paging token embeds the last UPN and id",
                              self.listing([("user", {}),
                                            ("user", {"kinds": {("user", "userPrincipalName"): "guest_upn",
                                                                ("user", "onPremisesUserPrincipalName"): "guest_upn"}})],
                                           f"{GRAPH}/$metadata#users",
                                           next_link=lambda: f"{GRAPH}/users?$top=2&$skiptoken="
                                           + self.directory_token("$['@odata.nextLink']"), flavour="teams")))
        if "user" in which:
            out.append(Sample("user.json", "/v1.0/users/{userId}", "microsoft.graph.user",
                              f"{GRAPH}/users/{uid}", "one user, every property",
                              self.single("user", f"{GRAPH}/$metadata#users/$entity")))
        if "user" in which and "manager" in which:
            out.append(Sample("user-expand-manager.json", "/v1.0/users/{userId}",
                              "microsoft.graph.user + $expand=manager (microsoft.graph.user)",
                              f"{GRAPH}/users/{uid}?$expand=manager", "one user with the expanded manager",
                              self.single("user", f"{GRAPH}/$metadata#users(manager())/$entity",
                                          expand={"manager": ("user", {}, 1)})))
        if "groups" in which:
            out.append(Sample("groups.json", "/v1.0/groups", "microsoft.graph.group (collection)",
                              f"{GRAPH}/groups?$top=1", "one page of groups, every property",
                              self.listing([("group", {})], f"{GRAPH}/$metadata#groups",
                                           next_link=lambda: f"{GRAPH}/groups?$top=1&$skiptoken="
                                           + self.directory_token("$['@odata.nextLink']"))))
        if "group" in which:
            out.append(Sample("group.json", "/v1.0/groups/{groupId}", "microsoft.graph.group",
                              f"{GRAPH}/groups/{gid}", "one group, every property",
                              self.single("group", f"{GRAPH}/$metadata#groups/$entity")))
        for rel in ("members", "transitiveMembers"):
            if rel not in which:
                continue
            name = "group-members.json" if rel == "members" else "group-transitive-members.json"
            out.append(Sample(name, f"/v1.0/groups/{{groupId}}/{rel}",
                              "microsoft.graph.directoryObject: " + ", ".join(
                                  self.M[k]["odata"].lstrip("#") for k in MEMBER_TYPES),
                              f"{GRAPH}/groups/{gid}/{rel}?$top=5",
                              "one member of every directory object type a group can hold",
                              self.listing([(k, {}) for k in MEMBER_TYPES], f"{GRAPH}/$metadata#directoryObjects",
                                           next_link=lambda rel=rel: f"{GRAPH}/groups/{gid}/{rel}?$top=5&$skiptoken="
                                           + self.directory_token("$['@odata.nextLink']"),
                                           odata_type=True)))
        return out

    def mailbox_settings(self, conn: str) -> Sample:
        uid = self.person_in_url(f"{conn}/mailboxSettings")
        return Sample("mailbox-settings.json", "/v1.0/users/{userId}/mailboxSettings",
                      "microsoft.graph.mailboxSettings", f"{GRAPH}/users/{uid}/mailboxSettings",
                      "mailbox settings, every property (automatic replies with personal text)",
                      self.single("mailbox_settings", f"{GRAPH}/$metadata#users('{uid}')/mailboxSettings"))

    # -- connectors -------------------------------------------------------------
    def entra_id(self) -> list:
        return self.directory("entra-id", {"users", "user", "manager", "groups", "group", "members", "transitiveMembers"})

    def outlook_mail(self) -> list:
        sent = "one sent item of every message type, every property"
        return self.mail("outlook-mail", [
            ("sent-messages.json", "mailFolders/SentItems", "mailFolders('SentItems')/", sent),
            ("sent-messages-paren.json", "mailFolders('SentItems')", "mailFolders('SentItems')/", sent)])

    def outlook_mail_received(self) -> list:
        sent = "one sent item of every message type, every property"
        received = "one received item of every message type, every property"
        return self.mail("outlook-mail-received", [
            ("sent-messages.json", "mailFolders/SentItems", "mailFolders('SentItems')/", sent),
            ("sent-messages-paren.json", "mailFolders('SentItems')", "mailFolders('SentItems')/", sent),
            ("inbox-messages.json", "mailFolders/Inbox", "mailFolders('Inbox')/", received),
            ("inbox-messages-paren.json", "mailFolders('Inbox')", "mailFolders('Inbox')/", received),
            ("messages.json", "", "", "one message of every message type in any folder, every property")])

    def mail(self, conn: str, listings: list) -> list:
        """Message listings (file, path segments before `/messages` ("" = every folder), the same in the
        context URL, description), one message of each type, the mailbox settings and the directory."""
        out = []
        for file, seg, ctx, description in listings:
            uid = self.person_in_url(f"{conn}/{file}")
            path = f"/{seg}/messages" if seg else "/messages"
            out.append(Sample(file, f"/v1.0/users/{{userId}}{path}",
                              "microsoft.graph.message, calendarSharingMessage, eventMessage, eventMessageRequest, "
                              "eventMessageResponse (collection)",
                              f"{GRAPH}/users/{uid}{path}?$top=5", description,
                              self.listing([(k, {}) for k in MESSAGE_TYPES],
                                           f"{GRAPH}/$metadata#users('{uid}')/{ctx}messages",
                                           next_link=f"{GRAPH}/users/{uid}{path}?$top=5&$skip=5",
                                           odata_type=True)))
        for k in MESSAGE_TYPES:
            uid = self.person_in_url(f"{conn}/message/{k}")
            mid = "AAMkAD" + opaque(f"msg:{k}")[:40] + "AAA="
            file = "message.json" if k == "message" else f"message-{k.replace('_', '-')}.json"
            out.append(Sample(file, "/v1.0/users/{userId}/messages/{messageId}", self.M[k]["odata"].lstrip("#"),
                              f"{GRAPH}/users/{uid}/messages/{mid}", f"one {self.M[k]['odata'][17:]}, every property",
                              self.single(k, f"{GRAPH}/$metadata#users('{uid}')/messages/$entity",
                                          odata_type=True)))
        out.append(self.mailbox_settings(conn))
        out += self.directory(conn, {"users", "user", "groups", "members", "group"})
        return out

    def outlook_cal(self) -> list:
        out = []
        uid = self.person_in_url("outlook-cal/events")
        out.append(Sample("events.json", "/v1.0/users/{userId}/events", "microsoft.graph.event (collection)",
                          f"{GRAPH}/users/{uid}/events?$top=1", "events, every property",
                          self.listing([("event", {})], f"{GRAPH}/$metadata#users('{uid}')/events",
                                       next_link=f"{GRAPH}/users/{uid}/events?$top=1&$skip=1")))
        uid = self.person_in_url("outlook-cal/event")
        eid = "AAMkAD" + opaque("event")[:40] + "AAA="
        out.append(Sample("event.json", "/v1.0/users/{userId}/events/{eventId}", "microsoft.graph.event",
                          f"{GRAPH}/users/{uid}/events/{eid}", "one event, every property",
                          self.single("event", f"{GRAPH}/$metadata#users('{uid}')/events/$entity")))
        uid = self.person_in_url("outlook-cal/calendar-events")
        cid = "AAMkAD" + opaque("calendar")[:40] + "AAA="
        out.append(Sample("calendar-events.json", "/v1.0/users/{userId}/calendars/{calendarId}/events",
                          "microsoft.graph.event (collection)", f"{GRAPH}/users/{uid}/calendars/{cid}/events?$top=1",
                          "events of a secondary calendar, every property",
                          self.listing([("event", {})], f"{GRAPH}/$metadata#users('{uid}')/calendars('{cid}')/events",
                                       next_link=f"{GRAPH}/users/{uid}/calendars/{cid}/events?$top=1&$skip=1")))
        uid = self.person_in_url("outlook-cal/calendar-view")
        q = "startDateTime=2026-11-02T00:00:00Z&endDateTime=2026-11-09T00:00:00Z"
        out.append(Sample("calendar-view.json", "/v1.0/users/{userId}/calendar/calendarView",
                          "microsoft.graph.event (collection: occurrence and exception)",
                          f"{GRAPH}/users/{uid}/calendar/calendarView?{q}&$top=2",
                          "expanded occurrences, every property",
                          self.listing([("event", {}), ("event", {})],
                                       f"{GRAPH}/$metadata#users('{uid}')/calendar/calendarView",
                                       next_link=f"{GRAPH}/users/{uid}/calendar/calendarView?{q}&$top=2&$skip=2")))
        out.append(self.mailbox_settings("outlook-cal"))
        out += self.directory("outlook-cal", {"users", "user", "groups", "members", "group"})
        uid = self.person_in_url("outlook-cal/instances")
        eid = "AAMkAD" + opaque("series-master")[:40] + "AAA="
        q = "startDateTime=2026-11-02T00:00:00Z&endDateTime=2026-11-30T00:00:00Z"
        out.append(Sample("event-instances.json", "/v1.0/users/{userId}/events/{eventId}/instances",
                          "microsoft.graph.event (collection: occurrences of a series)",
                          f"{GRAPH}/users/{uid}/events/{eid}/instances?{q}&$top=2",
                          "occurrences of a recurring meeting in a window, every property",
                          self.listing([("event", {}), ("event", {})],
                                       f"{GRAPH}/$metadata#users('{uid}')/events('{eid}')/instances",
                                       next_link=f"{GRAPH}/users/{uid}/events/{eid}/instances?{q}&$top=2&$skip=2")))
        return out

    def outlook_contacts(self) -> list:
        out = []
        uid = self.person_in_url("outlook-contacts/contacts")
        out.append(Sample("contacts.json", "/v1.0/users/{userId}/contacts", "microsoft.graph.contact (collection)",
                          f"{GRAPH}/users/{uid}/contacts?$top=1", "contacts, every property",
                          self.listing([("contact", {})], f"{GRAPH}/$metadata#users('{uid}')/contacts",
                                       next_link=f"{GRAPH}/users/{uid}/contacts?$top=1&$skip=1")))
        uid = self.person_in_url("outlook-contacts/contact-folders")
        out.append(Sample("contact-folders.json", "/v1.0/users/{userId}/contactFolders",
                          "microsoft.graph.contactFolder (collection)", f"{GRAPH}/users/{uid}/contactFolders?$top=1",
                          "contact folders, every property",
                          self.listing([("contact_folder", {})], f"{GRAPH}/$metadata#users('{uid}')/contactFolders",
                                       next_link=f"{GRAPH}/users/{uid}/contactFolders?$top=1&$skip=1")))
        uid = self.person_in_url("outlook-contacts/folder-contacts")
        fid = "AAMkAD" + opaque("contact-folder")[:40] + "AAA="
        out.append(Sample("folder-contacts.json", "/v1.0/users/{userId}/contactFolders/{contactFolderId}/contacts",
                          "microsoft.graph.contact (collection)",
                          f"{GRAPH}/users/{uid}/contactFolders/{fid}/contacts?$top=1",
                          "contacts of one folder, every property",
                          self.listing([("contact", {})],
                                       f"{GRAPH}/$metadata#users('{uid}')/contactFolders('{fid}')/contacts",
                                       next_link=f"{GRAPH}/users/{uid}/contactFolders/{fid}/contacts?$top=1&$skip=1")))
        out += self.directory("outlook-contacts", {"users", "user"})
        return out

    def msft_teams(self) -> list:
        out = []
        tid = guid("team:msft-teams")
        chan = "19:" + opaque("channel")[:32] + "@thread.tacv2"
        out.append(Sample("teams.json", "/v1.0/teams", "microsoft.graph.team (collection)", f"{GRAPH}/teams?$top=1",
                          "teams, every property",
                          self.listing([("team", {})], f"{GRAPH}/$metadata#teams",
                                       next_link=f"{GRAPH}/teams?$top=1&$skiptoken={opaque('teams')}")))
        out.append(Sample("all-channels.json", "/v1.0/teams/{teamId}/allChannels",
                          "microsoft.graph.channel (collection)", f"{GRAPH}/teams/{tid}/allChannels",
                          "channels of a team, every property",
                          self.listing([("channel", {})], f"{GRAPH}/$metadata#teams('{tid}')/allChannels")))
        uid = self.person_in_url("msft-teams/chats")
        out.append(Sample("chats.json", "/v1.0/users/{userId}/chats",
                          "microsoft.graph.chat (collection: oneOnOne, group, meeting)",
                          f"{GRAPH}/users/{uid}/chats?$top=3", "one chat of each type, every property",
                          self.post(self.listing([("chat", {}), ("chat", {}), ("chat", {})],
                                                 f"{GRAPH}/$metadata#users('{uid}')/chats",
                                                 next_link=f"{GRAPH}/users/{uid}/chats?$top=3&$skiptoken="
                                                 + opaque("chats")),
                                    self.fix_chats)))
        items = ([("chat_message", {})]
                 + [("chat_message", {"event_message_detail": d}) for d in descendants(self.M, "event_message_detail")]
                 + [("targeted_chat_message", {})])
        kinds = ("microsoft.graph.chatMessage (collection): a message, one systemEventMessage per "
                 "eventMessageDetail subtype, a targetedChatMessage")
        for file, delta, expand in (("channel-messages.json", False, False),
                                    ("channel-messages-expand-replies.json", False, True),
                                    ("channel-messages-delta.json", True, False),
                                    ("channel-messages-delta-expand-replies.json", True, True)):
            base = f"{GRAPH}/teams/{tid}/channels/{chan}/messages" + ("/delta" if delta else "")
            q = "?$top=50" + ("&$expand=replies" if expand else "")
            out.append(Sample(file, "/v1.0/teams/{teamId}/channels/{channelId}/messages" + ("/delta" if delta else ""),
                              kinds + (" + $expand=replies" if expand else ""), base + q,
                              ("delta round of " if delta else "") + "channel messages, every property"
                              + (", replies expanded" if expand else ""),
                              self.post(self.listing(items, f"{GRAPH}/$metadata#teams('{tid}')/channels('{chan}')/messages"
                                                     if not delta else f"{GRAPH}/$metadata#Collection(chatMessage)",
                                                     next_link=None if delta else base + q + "&$skiptoken=" + opaque(file),
                                                     delta_link=(base + "?$deltatoken=" + opaque(file)) if delta else None,
                                                     expand={"replies": ("chat_message", {}, 1)} if expand else None),
                                        self.fix_messages)))
        a, b = guid("chat-member-a"), guid("chat-member-b")
        chat_id = f"19:{a}_{b}@unq.gbl.spaces"
        out.append(Sample("chat-messages.json", "/v1.0/chats/{chatId}/messages", kinds,
                          f"{GRAPH}/chats/{chat_id}/messages?$top=50", "one-on-one chat messages, every property",
                          self.post(self.listing(items, f"{GRAPH}/$metadata#chats('{chat_id}')/messages",
                                                 next_link=f"{GRAPH}/chats/{chat_id}/messages?$top=50&$skiptoken="
                                                 + opaque("chat-messages")),
                                    lambda doc: self.fix_chat_messages(doc, chat_id, a, b))))
        call_id = guid("call")
        for file, choice, what in (
                ("call.json", {}, "joinMeetingIdMeetingInfo, appHostedMediaConfig, incomingCallOptions"),
                ("call-organizer-meeting.json", {"meeting_info": "organizer_meeting_info",
                                                 "media_config": "service_hosted_media_config",
                                                 "call_options": "outgoing_call_options"},
                 "organizerMeetingInfo, serviceHostedMediaConfig, outgoingCallOptions"),
                ("call-token-meeting.json", {"meeting_info": "token_meeting_info"}, "tokenMeetingInfo")):
            out.append(Sample(file, "/v1.0/communications/calls/{callId}", f"microsoft.graph.call ({what})",
                              f"{GRAPH}/communications/calls/{call_id}", f"one call, every property ({what})",
                              self.single("call", f"{GRAPH}/$metadata#communications/calls/$entity", flavour="comms",
                                          choice=choice)))
        out.append(Sample("call-records.json", "/v1.0/communications/callRecords",
                          "microsoft.graph.callRecords.callRecord (collection)",
                          f"{GRAPH}/communications/callRecords?$top=1", "call records, every property",
                          self.listing([("call_records.call_record", {})],
                                       f"{GRAPH}/$metadata#communications/callRecords", flavour="callrecords",
                                       next_link=f"{GRAPH}/communications/callRecords?$top=1&$skiptoken="
                                       + opaque("callRecords"))))
        rid = guid("callrecord")
        seg = ("call_records.segment", {}, 1)
        for file, q, expand, choice, what in (
                ("call-record.json", "", None, {}, ""),
                ("call-record-expand-sessions.json", "?$expand=sessions",
                 {"sessions": ("call_records.session", {}, 1)}, {}, " + $expand=sessions"),
                ("call-record-expand-sessions-segments.json", "?$expand=sessions($expand=segments)",
                 {"sessions": ("call_records.session", {"segments": seg}, 1)}, {},
                 " + $expand=sessions($expand=segments) (participantEndpoint)"),
                ("call-record-service-endpoints.json", "?$expand=sessions($expand=segments)",
                 {"sessions": ("call_records.session", {"segments": seg}, 1)},
                 {"call_records.endpoint": "call_records.service_endpoint"},
                 " + $expand=sessions($expand=segments) (serviceEndpoint)")):
            out.append(Sample(file, "/v1.0/communications/callRecords/{callRecordId}",
                              "microsoft.graph.callRecords.callRecord" + what,
                              f"{GRAPH}/communications/callRecords/{rid}{q}", "one call record, every property" + what,
                              self.single("call_records.call_record",
                                          f"{GRAPH}/$metadata#communications/callRecords/$entity",
                                          flavour="callrecords", expand=expand, choice=choice)))
        period = "fromDateTime=2026-11-01T00:00:00Z,toDateTime=2026-11-02T00:00:00Z"
        for file, fn, key in (("direct-routing-calls.json", "getDirectRoutingCalls", "call_records.direct_routing_log_row"),
                              ("pstn-calls.json", "getPstnCalls", "call_records.pstn_call_log_row")):
            url = f"{GRAPH}/communications/callRecords/{fn}({period})"
            out.append(Sample(file, f"/v1.0/communications/callRecords/{fn}(...)",
                              self.M[key]["odata"].lstrip("#") + " (collection)", url,
                              "call log rows, every property",
                              self.listing([(key, {})], f"{GRAPH}/$metadata#Collection({self.M[key]['odata'][1:]})",
                                           next_link=url + "?$skip=1", flavour="callrecords")))
        uid = self.person_in_url("msft-teams/onlineMeetings")
        join = ("https://teams.microsoft.com/l/meetup-join/19%3ameeting_" + opaque("meeting")[:32]
                + f"%40thread.v2/0?context=%7b%22Tid%22%3a%22{TENANT}%22%2c%22Oid%22%3a%22{uid}%22%7d")
        from urllib.parse import quote
        out.append(Sample("online-meetings.json", "/v1.0/users/{userId}/onlineMeetings",
                          "microsoft.graph.onlineMeeting (collection)",
                          f"{GRAPH}/users/{uid}/onlineMeetings?$filter=JoinWebUrl%20eq%20'{quote(join, safe='')}'",
                          "a meeting looked up by its join URL, every property",
                          self.post(self.listing([("online_meeting", {})],
                                                 f"{GRAPH}/$metadata#users('{uid}')/onlineMeetings", flavour="comms"),
                                    lambda doc: self.fix_meeting(doc, "$.value[0].id"))))
        uid = self.person_in_url("msft-teams/attendanceReports")
        mid = self.meeting_id(uid)
        base = f"{GRAPH}/users/{uid}/onlineMeetings/{mid}/attendanceReports"
        ctx = f"{GRAPH}/$metadata#users('{uid}')/onlineMeetings('{mid}')/attendanceReports"
        out.append(Sample("attendance-reports.json", "/v1.0/users/{userId}/onlineMeetings/{meetingId}/attendanceReports",
                          "microsoft.graph.meetingAttendanceReport (collection)", base,
                          "attendance reports of a meeting, every property",
                          self.post(self.listing([("meeting_attendance_report", {})], ctx, flavour="comms"),
                                    lambda doc: self.plant_in_context(doc, uid, mid))))
        rep = guid("report")
        for file, q, expand in (("attendance-report.json", "", None),
                                ("attendance-report-expand-records.json", "?$expand=attendanceRecords",
                                 {"attendanceRecords": ("attendance_record", {}, 2)})):
            out.append(Sample(file, "/v1.0/users/{userId}/onlineMeetings/{meetingId}/attendanceReports/{reportId}",
                              "microsoft.graph.meetingAttendanceReport" + (" + $expand=attendanceRecords" if q else ""),
                              f"{base}/{rep}{q}", "one attendance report, every property"
                              + (", with attendance records" if q else ""),
                              self.post(self.single("meeting_attendance_report",
                                                    f"{ctx}('{rep}')" + ("(attendanceRecords())" if q else "")
                                                    + "/$entity", expand=expand, flavour="comms"),
                                        lambda doc, uid=uid, mid=mid: self.plant_in_context(doc, uid, mid))))
        out += self.directory("msft-teams", {"users"})
        # The organizer and participants relationships that replace the
        # deprecated `organizer` / `participants` (no data since 2026-06-30).
        v2 = {"organizer_v2": ("call_records.organizer", {}, 1),
              "participants_v2": ("call_records.participant", {}, 2)}
        q = "?$expand=organizer_v2,participants_v2"
        full = dict(v2, sessions=("call_records.session", {"segments": ("call_records.segment", {}, 1)}, 1))
        out.append(Sample("call-records-expand-v2.json", "/v1.0/communications/callRecords",
                          "microsoft.graph.callRecords.callRecord (collection) + $expand=sessions($expand=segments),organizer_v2,participants_v2",
                          f"{GRAPH}/communications/callRecords?$expand=sessions($expand=segments),organizer_v2,participants_v2",
                          "call records with sessions, segments, organizer_v2 and participants_v2",
                          self.listing([("call_records.call_record", {})],
                                       f"{GRAPH}/$metadata#communications/callRecords(sessions(segments()),organizer_v2(),participants_v2())",
                                       flavour="callrecords", expand=full)))
        out.append(Sample("call-record-expand-v2.json", "/v1.0/communications/callRecords/{callRecordId}",
                          "microsoft.graph.callRecords.callRecord + $expand=organizer_v2,participants_v2",
                          f"{GRAPH}/communications/callRecords/{rid}{q}", "one call record with organizer_v2 and participants_v2",
                          self.single("call_records.call_record",
                                      f"{GRAPH}/$metadata#communications/callRecords(organizer_v2(),participants_v2())/$entity",
                                      flavour="callrecords", expand=v2)))
        return out

    # -- post-processing of particular samples ------------------------------------
    def post(self, build, fix):
        def run():
            doc = build()
            fix(doc)
            return doc
        return run

    def meeting_id(self, organizer: str) -> str:
        import base64
        raw = f"1*{organizer}*0**19:meeting_{opaque('meeting')[:32]}@thread.v2".encode()
        return base64.b64encode(raw).decode().rstrip("=")

    def plant_in_context(self, doc, uid, mid):
        self.P.add(mid, "person_id", "$['@odata.context']")

    def fix_meeting(self, doc, path):
        mid = self.meeting_id(guid("meeting-organizer"))
        doc["value"][0]["id"] = mid
        self.P.add(mid, "person_id", path)

    def fix_chats(self, doc):
        types = ["oneOnOne", "group", "meeting"]
        for i, chat in enumerate(doc["value"]):
            chat["chatType"] = types[i]
        a = self.P.make("person_id", "$.value[0].id")
        b = self.P.make("person_id", "$.value[0].id")
        doc["value"][0]["id"] = chat_id = f"19:{a}_{b}@unq.gbl.spaces"
        from urllib.parse import quote
        doc["value"][0]["webUrl"] = f"https://teams.microsoft.com/l/chat/{quote(chat_id, safe='')}/0?tenantId={TENANT}"

    def fix_messages(self, doc):
        for i, msg in enumerate(doc["value"]):
            if i > 0 and "eventDetail" in msg:
                msg["messageType"] = "systemEventMessage"
        return doc

    def fix_chat_messages(self, doc, chat_id, a, b):
        self.fix_messages(doc)

        def walk(o):
            if isinstance(o, dict):
                for k, v in o.items():
                    if k == "chatId" and isinstance(v, str):
                        o[k] = chat_id
                    else:
                        walk(v)
            elif isinstance(o, list):
                for v in o:
                    walk(v)
        walk(doc)
        self.P.add(a, "person_id", "$['@odata.context']")
        self.P.add(b, "person_id", "$['@odata.context']")


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

# Connector, its method in Gen, and the first marker number of its range.
CONNECTORS = [("entra-id", "entra_id", 10000), ("outlook-mail", "outlook_mail", 20000),
              ("outlook-cal", "outlook_cal", 30000), ("msft-teams", "msft_teams", 50000),
              ("outlook-contacts", "outlook_contacts", 70000),
              ("outlook-mail-received", "outlook_mail_received", 75000)]
MARKER_RANGE = 20000
# Connectors whose range is smaller than MARKER_RANGE (so the five-digit markers last).
MARKER_RANGES = {"outlook-contacts": 5000}


def strings_at(doc, path_prefix="$"):
    """(JSON path, string) for every key and string value."""
    out = []

    def walk(o, p):
        if isinstance(o, dict):
            for k, v in o.items():
                cp = child_path(p, k)
                out.append((cp + " (key)", k))
                walk(v, cp)
        elif isinstance(o, list):
            for i, v in enumerate(o):
                walk(v, f"{p}[{i}]")
        elif isinstance(o, str):
            out.append((p, o))
    walk(doc, path_prefix)
    return out


def endpoints_of(rule_file: str) -> list:
    """pathTemplate / pathRegex of every endpoint of a rule file."""
    with open(rule_file, encoding="utf-8") as fh:
        return re.findall(r"^  - path(?:Template|Regex): (.+)$", fh.read(), re.M)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "example-api-responses"))
    ap.add_argument("--table", action="store_true", help="print the endpoint -> resource type table")
    ap.add_argument("--check", action="store_true",
                    help="generate into a temporary directory and fail if the committed files differ")
    args = ap.parse_args(argv)
    if args.check:
        import filecmp
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            rc = main(["--out", tmp])
            stale = []
            for conn, _, _ in CONNECTORS:
                new_dir = os.path.join(tmp, conn, "all-properties")
                old_dir = os.path.join(args.out, conn, "all-properties")
                names = sorted(set(os.listdir(new_dir)) | set(os.listdir(old_dir) if os.path.isdir(old_dir) else []))
                for n in names:
                    a, b = os.path.join(new_dir, n), os.path.join(old_dir, n)
                    if not (os.path.isfile(a) and os.path.isfile(b) and filecmp.cmp(a, b, shallow=False)):
                        stale.append(f"{conn}/all-properties/{n}")
            for n in stale:
                print(f"STALE: {n} (run scripts/graph-samples/generate.py)", file=sys.stderr)
            return 1 if (rc or stale) else 0
    models = load_models()
    planter = Planter()
    gen = Gen(models, planter)
    problems = []
    for conn, fn, base in CONNECTORS:
        planter.start(base)
        gen.B.seq = gen.B.rot = 0
        samples = getattr(gen, fn)()
        size = MARKER_RANGES.get(conn, MARKER_RANGE)
        if planter.n >= base + size or (base + size) > 99999:
            problems.append(f"{conn}: markers overflow their range (raise the bases in CONNECTORS)")
        d = os.path.join(args.out, conn, "all-properties")
        os.makedirs(d, exist_ok=True)
        for old in sorted(os.listdir(d)):
            if old.endswith(".json") or old == "requests.yaml":
                os.remove(os.path.join(d, old))
        planted_all = []
        lines = ["# file name -> request URL (Graph v1.0, as sent upstream, with real ids)",
                 f"# Generated by scripts/graph-samples/generate.py from msgraph-sdk {sdk_version()}: every",
                 "# property of the returned type(s), personal data planted (see planted.json).",
                 "samples:"]
        for s in samples:
            start = len(planter.entries)
            doc = s.build()
            texts = strings_at(doc)
            # The person whose mailbox/chats/meetings the URL names shows in contexts and links.
            for uid in sorted(gen.url_people):
                if any(uid in t for _, t in texts):
                    planter.add(uid, "person_id", "")
            mine = planter.entries[start:]
            for e in mine:
                e["file"] = s.file
                hits = [p for p, t in texts if e["value"] in t]
                if not hits:
                    problems.append(f"{conn}/{s.file}: planted {e['value']!r} does not occur")
                elif not any(p == e["path"] for p in hits):
                    e["path"] = hits[0]
                planted_all.append(e)
            with open(os.path.join(d, s.file), "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=2, ensure_ascii=False)
                fh.write("\n")
            lines += [f"  - file: {s.file}", f"    url: {s.url}",
                      f"    description: {json.dumps(s.description + ' [' + s.resource + ']', ensure_ascii=False)}"]
            if args.table:
                print(f"{conn:13} {s.endpoint:75} {s.file:45} {s.resource}")
        values = [e["value"] for e in planted_all]
        dup = sorted({v for v in values if values.count(v) > 1})
        # A person id may recur (chat ids repeat in every message); everything else is planted once.
        dup = [v for v in dup if not all(e["kind"] == "person_id" for e in planted_all if e["value"] == v)]
        if dup:
            problems.append(f"{conn}: planted values not unique: {dup[:5]}")
        with open(os.path.join(d, "requests.yaml"), "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        with open(os.path.join(d, "planted.json"), "w", encoding="utf-8") as fh:
            # One planted value per line: small diffs, easy to grep.
            fh.write('{\n "generator": "scripts/graph-samples/generate.py",\n'
                     f' "msgraphSdk": {json.dumps(sdk_version())},\n "planted": [\n')
            rows = []
            for e in planted_all:
                row = OrderedDict([("file", e["file"]), ("path", e["path"]), ("kind", e["kind"]),
                                   ("value", e["value"])])
                extra = [x for x in e["needles"] if x != e["value"]]
                if extra:
                    row["needles"] = extra
                rows.append("  " + json.dumps(row, ensure_ascii=False))
            fh.write(",\n".join(rows) + "\n ]\n}\n")
        rules = endpoints_of(os.path.join(ROOT, "rules", f"{conn}.yaml"))
        print(f"{conn}: {len(samples)} samples for {len(rules)} endpoints, {len(planted_all)} planted values")
    for p in problems:
        print("PROBLEM:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
