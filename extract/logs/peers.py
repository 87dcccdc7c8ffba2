"""Remote peers: the client address or hostname a log message names, or that its session named before."""

import bisect
import ipaddress
import re
from datetime import datetime, timedelta

_OCTET = r"(?:25[0-5]|2[0-4]\d|[01]?\d?\d)"  # leading zeros as written (192.030.0.6) are kept
_IPV4 = rf"(?:::ffff:)?{_OCTET}(?:\.{_OCTET}){{3}}"  # IPv4-mapped IPv6 (::ffff:192.0.2.1) reads as IPv4
_IPV6 = r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,8}"  # checked with ipaddress; may end in an unbracketed :port
_HOSTNAME = r"(?:[A-Za-z0-9](?:[\w-]*[A-Za-z0-9])?\.)+[A-Za-z][\w-]*[A-Za-z0-9]|localhost"
# One address as written: quoted, bracketed ([2001:db8::1]:22, [IPv6:2001:db8::1]), with a port (:22, /5060 after a
# transport prefix as in "IPV4/UDP/192.0.2.1/5060", or -1780 as sshd's "Remote: 192.0.2.1-1780" writes it), and not
# part of a longer name or number.
_ADDRESS = (
    rf"['\"]?(?:IPV[46]/\w+/)?\[?(?:IPv6:)?(?:{_IPV4}|{_IPV6}|{_HOSTNAME})\]?(?:[:/]\d{{1,5}}|(?<=\d)-\d{{1,5}})?"
    rf"(?![\w.-]*\w)"
)
# Where a message names the remote party: after a key ("from", "client", "for '192.0.2.1'", "from IP 192.0.2.1",
# "rhost=", "ip=", "relay=", "remote...=", 'user'@'host'), and a name or (HELO name) followed by the address it
# came from ("unknown[192.0.2.1]", "mail.example.com (helo) [192.0.2.1]"), which then stands for the name. A key
# right after "=" is a value ("ruser=rhost=..."), not a key.
_PEER_KEYED = re.compile(
    rf"(?:(?<![\w=-])(?:(?P<key>from|client|peer|for)(?:\s*[=:]\s*|\s+)(?:IP\s+)?"
    rf"|(?P<field>remote[\w-]*|rhost|rip|ip|relay|host|addr|address|src)\s*[=:]\s*)|(?<=['\"])@)?"
    rf"(?:(?<![\w.-])(?:(?:{_HOSTNAME}|unknown)(?:\s?\([^()\s]*\))?|\([^()\s]*\))\s?\[(?P<resolved>[^\]\s]+)\]"
    rf"|(?<=[\s=:@])(?P<address>{_ADDRESS}))",
    re.IGNORECASE,
)
# Failing that, the first IP address that is not a loopback or unspecified one (a server's own or bind address)
# and not part of a version number, a path, a network (/24) or a hostname.
_VERSION_LEAD = re.compile(r"\b(?:version|ver|release|rev|build|v)[\s:=]*$", re.IGNORECASE)
_PEER_ANY = re.compile(rf"(?<![\w.:/-])\[?(?:IPv6:)?(?:{_IPV4}|{_IPV6})\]?(?::\d{{1,5}})?(?![\w.-]*\w|/\d)", re.I)


def peer_address(text: str, *, hostnames: bool = True) -> str | None:
    """The IP address (or, where `hostnames`, the hostname) written in `text`, without quotes, brackets, port."""
    text = re.sub(r"^['\"]?(?:IPV[46]/\w+/)?\[?(?:IPv6:)?|\]?(?:/\d+)?['\"]?$", "", text, flags=re.IGNORECASE)
    ipv4 = re.fullmatch(rf"(?:::ffff:)?({_OCTET}(?:\.{_OCTET}){{3}})\]?(?:[:-]\d{{1,5}})?", text, re.IGNORECASE)
    if ipv4:
        return ipv4[1]
    for candidate in (text, re.sub(r"\]?:\d{1,5}$", "", text)):
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        return candidate
    name = re.fullmatch(rf"({_HOSTNAME})(?::\d{{1,5}})?", text) if hostnames else None
    return name[1] if name else None


def _is_own_address(ip: str) -> bool:
    if "." in ip:
        ip = ".".join(str(int(octet)) for octet in ip.split("."))  # ipaddress refuses leading zeros
    address = ipaddress.ip_address(ip)
    return address.is_loopback or address.is_unspecified


# Oracle Communications Messaging Server's transport field, tr="TCP|local ip|local port|remote ip|remote port": the
# peer is the remote half, at a fixed position and with no key in front of it.
_CONNECTION_TUPLE = re.compile(rf"\b(?:TCP|UDP)\|(?:{_IPV4}|{_IPV6})\|\d+\|(?P<remote>{_IPV4}|{_IPV6})\|\d+\b")
# key=value tokens. An address whose key follows the non-empty value of a user-name key may be part of that value:
# a user name can hold spaces, "=" and addresses ("ruser=test rhost=192.0.2.151 rhost=192.0.2.1" is user
# "test rhost=192.0.2.151"), so such an address only counts when the message offers no other.
_KEY_TOKEN = re.compile(r"(?<![\w.-])([A-Za-z_][\w.-]*)=")
_USER_KEYS = frozenset({"user", "ruser", "username", "login", "logname", "acct", "account", "sasl_username"})
# SIP URIs ('"28" <sip:28@192.0.2.100>') name whom the client claims to be; the addresses in them are the client's
# to choose, unlike the one the server saw the request come from ("failed for '192.0.2.1:7998'").
_CLIENT_IDENTITY = re.compile(r"<sips?:[^>]*>", re.IGNORECASE)
_BLANK = re.compile(r"\s*")
_CLIENT_TEXT_HINT = re.compile(rf"(?<![\w.-])(?:{'|'.join(sorted(_USER_KEYS))})=|<sips?:", re.IGNORECASE)
# An address followed by ": " (after its port and protocol) ends the message's own part, and what follows quotes
# the client: sshd's "Failed password for root from 192.0.2.1 port 22 ssh2: <details>".
_DETAILS_FOLLOW = re.compile(r"(?:\s+port\s+\d+)?(?:\s+ssh\d?)?:\s")
# An own address (loopback, 0.0.0.0) right after "on", "at" or "to", or later in a clause about listening or binding,
# is where a server listens or connects to (PostgreSQL's 'listening on IPv4 address "127.0.0.1", port 5432').
_LOCAL_LEAD = re.compile(r"\b(?:listen\w*|bind|bound)\b[^,;]*$|\b(?:on|at|to)\W*$", re.IGNORECASE)


class _ClientText:
    """Where a message may hold text the client wrote (see _KEY_TOKEN and _CLIENT_IDENTITY)."""

    def __init__(self, message: str):
        self.message = message
        self.keys = list(_KEY_TOKEN.finditer(message))
        self.key_starts = [key.start() for key in self.keys]
        self.identities = [identity.span() for identity in _CLIENT_IDENTITY.finditer(message)]

    def holds(self, position: int) -> bool:
        if any(begin <= position < end for begin, end in self.identities):
            return True
        index = bisect.bisect_left(self.key_starts, position) - 1  # the last key=value token before `position`
        if index < 0:
            return False
        key = self.keys[index]
        return key[1].lower() in _USER_KEYS and _BLANK.match(self.message, key.end(), position).end() < position


def message_peer(message: str) -> str | None:
    """The remote party a log message names, or None.

    In order: a connection tuple (_CONNECTION_TUPLE); an address after a key (_PEER_KEYED); the first bare IP
    address that is not an own one (_PEER_ANY); and only then 0.0.0.0 or a loopback address, the last resort of
    a message that names nothing else.

    Attackers choose some of the text a server logs (user names, request lines, SIP From headers), and fail2ban's
    samples show them writing a decoy address there ("Failed password for invalid user from 10.10.1.1 from
    127.0.0.1 port 58946", 'user "test": password mismatch, client: 127.0.0.1, ...", client: 192.0.2.2'). A
    message names its remote party under one key, and its fixed layout follows the values it quotes, so: the key
    that names the first trusted address is the message's key, and its last occurrence is taken, up to one that
    ends the message's own part (_DETAILS_FOLLOW). Trusted means not inside a user-name value or a SIP URI
    (_ClientText). 0.0.0.0 is where a server listens rather than a client, so it comes last.
    """
    connection = _CONNECTION_TUPLE.search(message) if "|" in message else None
    if connection:
        return peer_address(connection["remote"])
    client_text: _ClientText | bool | None = None
    trusted: list[tuple[str, str]] = []  # (key, peer)
    doubtful, unspecified = None, None
    for match in _PEER_KEYED.finditer(message):
        if match["resolved"]:
            peer = peer_address(match["resolved"], hostnames=False)
        elif match["key"] or match["field"] or match[0].startswith("@"):  # a bare address is left to _PEER_ANY
            peer = peer_address(match["address"], hostnames=(match["key"] or "").lower() != "for")
        else:
            continue
        if not peer:
            continue
        if not peer.strip("0.:"):  # 0.0.0.0, ::
            unspecified = unspecified or peer
            continue
        if client_text is None:  # only messages that name an address pay for this
            client_text = _ClientText(message) if _CLIENT_TEXT_HINT.search(message) else False
        if client_text and client_text.holds(match.start()):
            doubtful = doubtful or peer
            continue
        key = (match["key"] or match["field"] or ("@" if match[0].startswith("@") else "[]")).lower()
        trusted.append((key, peer))
        if key == trusted[0][0] and _DETAILS_FOLLOW.match(message, match.end()):
            break
    if trusted:
        return next(peer for key, peer in reversed(trusted) if key == trusted[0][0])
    if doubtful:
        return doubtful
    own = None
    for match in _PEER_ANY.finditer(message):
        if _VERSION_LEAD.search(message, max(0, match.start() - 10), match.start()):
            continue
        peer = peer_address(match[0], hostnames=False)
        # an IPv6 lookalike without a digit is a word such as "cafe::babe" (C++ scopes have no hex-only names)
        if not peer or not any(c.isdigit() for c in peer):
            continue
        if not _is_own_address(peer):
            return peer
        if own is None and not _LOCAL_LEAD.search(message, max(0, match.start() - 40), match.start()):
            own = peer
    return unspecified or own


# Explicit connection or session ids: OpenLDAP's "conn=1022", Dovecot's "session=<n4JLdHNVngZGpV2j>".
_SESSION_ID = re.compile(r"(?<![\w-])(?:conn|session)=<?(?P<id>[\w.:+/-]+)>?", re.IGNORECASE)
# How long after the last line that named it a session's peer is still inherited.
_SESSION_SPAN = timedelta(minutes=10)


class Sessions:
    """Peers of the records that name none, taken from earlier records of the same session.

    Many lines about a client do not repeat its address: sshd writes "Connection from 192.0.2.3 port 39678" and
    then, in the same process, "fatal: Unable to negotiate a key exchange method [preauth]"; slapd writes the
    address once per connection ("conn=1022 fd=21 ACCEPT from IP=192.0.2.1:45011") and then only "conn=1022".
    fail2ban ties such lines together by process id or connection id, and so does this: a record that names no
    peer inherits the one most recently named by a record of the same session, i.e. with the same connection id
    if the record carries one, otherwise the same host, program and process id. Records without a process or
    connection id (most application logs) are no session and inherit nothing. A process that serves many clients
    in turn would hand its last client to unrelated lines, and ids are reused, so the peer expires _SESSION_SPAN
    after the last line that named it.
    """

    def __init__(self) -> None:
        self.known: dict[tuple, tuple[str, datetime | None]] = {}

    def peer(
        self,
        *,
        host: str | None,
        program: str | None,
        pid: str | None,
        message: str,
        timestamp: datetime | None,
        peer: str | None,
    ) -> str | None:
        """The record's own `peer` if it names one (remembered for its session), else its session's, if any."""
        session = _SESSION_ID.search(message)
        if session:
            key: tuple = (host, program, "session", session["id"])
        elif pid and program:
            key = (host, program, pid)
        else:
            return peer
        if peer:
            self.known[key] = (peer, timestamp)
            return peer
        known, seen = self.known.get(key, (None, None))
        if known and (timestamp is None or seen is None or abs(timestamp - seen) <= _SESSION_SPAN):
            return known
        return None
