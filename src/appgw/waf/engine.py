"""libmodsecurity (ModSecurity v3), bound through cffi in ABI mode.

ABI mode opens Debian's `libmodsecurity.so.3` at run time and needs no
compiler at install. One `Engine` per process holds ModSecurity's instance
and its log callback; `compile` turns directives into a rule set and
`evaluate` runs one request through one, synchronously: a transaction is
created, fed and freed within the call, so the callback's messages belong
to that request (the worker runs one evaluation at a time).

The messages are ModSecurity's log lines ("[id "942100"] [msg "..."]
[data "..."] [severity "2"]"), parsed into `RuleMatch` values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from attrs import frozen

from appgw.waf.crs import INSTALL_HINT, LIBRARY

_CDEF = """
typedef struct ModSecurity_t ModSecurity;
typedef struct Transaction_t Transaction;
typedef struct Rules_t RulesSet;
typedef struct ModSecurityIntervention_t {
    int status; int pause; char *url; char *log; int disruptive;
} ModSecurityIntervention;
typedef void (*ModSecLogCb)(void *, const void *);
ModSecurity *msc_init(void);
const char *msc_who_am_i(ModSecurity *msc);
void msc_set_connector_info(ModSecurity *msc, const char *connector);
void msc_set_log_cb(ModSecurity *msc, ModSecLogCb cb);
RulesSet *msc_create_rules_set(void);
int msc_rules_add(RulesSet *rules, const char *plain_rules, const char **error);
int msc_rules_cleanup(RulesSet *rules);
Transaction *msc_new_transaction_with_id(ModSecurity *ms, RulesSet *rules, char *id,
                                         void *logCbData);
int msc_process_connection(Transaction *t, const char *client, int cPort,
                           const char *server, int sPort);
int msc_process_uri(Transaction *t, const char *uri, const char *protocol,
                    const char *http_version);
int msc_add_n_request_header(Transaction *t, const unsigned char *key, size_t len_key,
                             const unsigned char *value, size_t len_value);
int msc_process_request_headers(Transaction *t);
int msc_append_request_body(Transaction *t, const unsigned char *body, size_t size);
int msc_process_request_body(Transaction *t);
int msc_intervention(Transaction *t, ModSecurityIntervention *it);
void msc_transaction_cleanup(Transaction *t);
"""

_FIELD = re.compile(r'\[(\w+) "((?:[^"\\]|\\.)*)"\]')


class EngineUnavailable(Exception):
    """libmodsecurity or cffi is missing; the message says what to install."""


class RulesError(Exception):
    """ModSecurity refused the directives; the message is its own."""


@frozen
class RuleMatch:
    """One rule that matched a request."""

    rule_id: str
    message: str
    data: str  # the matched data ("Matched Data: ... found within ARGS:id: ...")
    severity: int  # ModSecurity's: 2 critical, 3 error, 4 warning, 5 notice
    file: str = ""


@frozen
class Transaction:
    """What ModSecurity is given of one request."""

    client: tuple[str, int]
    server: tuple[str, int]
    method: bytes
    uri: bytes
    version: bytes  # "1.1"
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes | None = None  # None: the body is not inspected
    partial: bool = False  # the body is longer than what was read ahead
    unique_id: str = ""


def parse_message(line: str) -> RuleMatch | None:
    """A ModSecurity log line -> RuleMatch; None for lines that name no rule."""
    fields: dict[str, str] = {}
    for key, value in _FIELD.findall(line):
        fields.setdefault(key, value.replace('\\"', '"'))
    rule_id = fields.get("id")
    if not rule_id:
        return None
    try:
        severity = int(fields.get("severity", "5"))
    except ValueError:
        severity = 5
    return RuleMatch(
        rule_id=rule_id,
        message=fields.get("msg", ""),
        data=fields.get("data", ""),
        severity=severity,
        file=fields.get("file", ""),
    )


class RuleSet:
    """A compiled rule set (ModSecurity's RulesSet)."""

    def __init__(self, engine: Engine, handle: Any) -> None:
        self.engine = engine
        self.handle = handle

    def evaluate(self, transaction: Transaction) -> list[RuleMatch]:
        return self.engine.evaluate(self, transaction)


class Engine:
    """ModSecurity's process-wide instance."""

    def __init__(self) -> None:
        try:
            import cffi  # type: ignore[import-untyped]
        except ImportError:
            raise EngineUnavailable("the WAF needs the cffi package (pip install cffi)") from None
        self.ffi = cffi.FFI()
        self.ffi.cdef(_CDEF)
        try:
            self.lib: Any = self.ffi.dlopen(LIBRARY)
        except OSError:
            raise EngineUnavailable(
                f"the WAF needs ModSecurity v3 ({LIBRARY} not found; {INSTALL_HINT})"
            ) from None
        self.modsecurity = self.lib.msc_init()
        self.lib.msc_set_connector_info(self.modsecurity, b"appgw")
        self._lines: list[str] = []
        self._callback = self.ffi.callback("void(void *, const void *)", self._log)
        self.lib.msc_set_log_cb(self.modsecurity, self._callback)
        self._intervention = self.ffi.new("ModSecurityIntervention *")

    @property
    def version(self) -> str:
        return str(self.ffi.string(self.lib.msc_who_am_i(self.modsecurity)).decode())

    def _log(self, data: Any, message: Any) -> None:
        if message != self.ffi.NULL:
            text = self.ffi.string(self.ffi.cast("char *", message))
            self._lines.append(text.decode("utf-8", "replace"))

    def compile(self, directives: str) -> RuleSet:
        handle = self.lib.msc_create_rules_set()
        error = self.ffi.new("const char **")
        if self.lib.msc_rules_add(handle, directives.encode(), error) < 0:
            message = self.ffi.string(error[0]).decode("utf-8", "replace") if error[0] else ""
            self.lib.msc_rules_cleanup(handle)
            raise RulesError(message.strip() or "ModSecurity refused the rules")
        return RuleSet(self, self.ffi.gc(handle, self.lib.msc_rules_cleanup))

    def evaluate(self, rules: RuleSet, t: Transaction) -> list[RuleMatch]:
        lib = self.lib
        self._lines = []
        unique = t.unique_id.encode() or b"-"  # cffi passes bytes as a char * of its own
        tx = lib.msc_new_transaction_with_id(self.modsecurity, rules.handle, unique, self.ffi.NULL)
        try:
            lib.msc_process_connection(
                tx, t.client[0].encode(), t.client[1], t.server[0].encode(), t.server[1]
            )
            lib.msc_process_uri(tx, t.uri, t.method, t.version)
            for name, value in t.headers:
                lib.msc_add_n_request_header(tx, name, len(name), value, len(value))
            lib.msc_process_request_headers(tx)
            if t.body:
                lib.msc_append_request_body(tx, t.body, len(t.body))
            lib.msc_process_request_body(tx)
            self._intervention.status = 200
            lib.msc_intervention(tx, self._intervention)
        finally:
            lib.msc_transaction_cleanup(tx)
        return _matches(self._lines)


def _matches(lines: Iterable[str]) -> list[RuleMatch]:
    found = []
    for line in lines:
        match = parse_message(line)
        if match is not None:
            found.append(match)
    return found


_ENGINE: Engine | None = None


def engine() -> Engine:
    """The process's engine, made on first use; raises EngineUnavailable."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Engine()
    return _ENGINE
