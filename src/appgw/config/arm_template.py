"""An ARM template's scope: its parameters, variables, loops and functions.

`Template` is what template expressions are evaluated against (see
arm_expressions.py for the grammar). It holds:

- the parameters the template declares and the values given for them
  (`--parameters`); a parameter with neither a value nor a defaultValue is
  an error naming `--parameters NAME=...`; a defaultValue may itself be an
  expression;
- the variables, evaluated when first read (a variable may refer to other
  variables; a loop among them is an error), with `copy` loops;
- the copy loops a value is inside (copyIndex());
- the resources of the document, for reference(), and `--reference` values
  for what exists only after deployment.

Values are resolved where they are read (Section calls `resolve`), so an
error names the key path in the user's file. Resource ids are read by their
last segments (`id_name`), the name of the sub-resource they point at; that
also survives the punctuation real templates leave behind
(".../frontendPorts/port443')]") and placeholders such as <subid>.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from appgw.config import arm_key_vault, arm_scope
from appgw.config.arm_expressions import (
    Deployed,
    Failed,
    Unresolved,
    evaluate,
    is_expression,
    literal,
)
from appgw.config.arm_functions import FUNCTIONS
from appgw.config.arm_parameters import coerce, parameter_problems
from appgw.config.fields import Invalid

_ID_PUNCTUATION = "')]\" \t"


def lower_keys(mapping: Any) -> dict[str, Any]:
    if not isinstance(mapping, Mapping):
        return {}
    return {str(k).lower(): v for k, v in mapping.items()}


class _Shared:
    """What every scope of one template shares: declarations and caches."""

    def __init__(
        self,
        parameters: Mapping[str, Any],
        variables: Mapping[str, Any],
        values: Mapping[str, Any],
        references: Mapping[str, Any],
    ) -> None:
        self.parameters = lower_keys(parameters)
        self.parameter_names = [str(k) for k in parameters]
        self.variables = lower_keys(variables)
        self.values = lower_keys(values)
        self.references = dict(references)
        self.context = arm_scope.with_overrides(arm_scope.local_values(), references)
        self.resources: dict[str, tuple[Mapping[str, Any], Template]] = {}
        self.parameter_cache: dict[str, Any] = {}
        self.variable_cache: dict[str, Any] = {}
        self.evaluating: list[str] = []
        self.files: list[str] = []  # linked templates read
        copies = self.variables.pop("copy", None)
        self.variable_copies = {
            str(lower_keys(c).get("name", "")).lower(): c
            for c in (copies if isinstance(copies, list) else [])
        }


class Template:
    """The scope template expressions are evaluated in."""

    def __init__(
        self,
        parameters: Mapping[str, Any],
        variables: Mapping[str, Any],
        *,
        values: Mapping[str, Any] | None = None,
        references: Mapping[str, Any] | None = None,
        _shared: _Shared | None = None,
        _loops: tuple[tuple[str, int], ...] = (),
    ) -> None:
        self.shared = _shared or _Shared(parameters, variables, values or {}, references or {})
        self.loops = _loops

    @classmethod
    def of(
        cls,
        document: Mapping[str, Any],
        values: Mapping[str, Any] | None = None,
        references: Mapping[str, Any] | None = None,
    ) -> Template:
        top = lower_keys(document)
        return cls(
            top.get("parameters") or {},
            top.get("variables") or {},
            values=values,
            references=references,
        )

    def within(self, loop: str, index: int) -> Template:
        """This scope inside iteration `index` of the copy loop `loop`."""
        return Template({}, {}, _shared=self.shared, _loops=(*self.loops, (loop.lower(), index)))

    def problems(self) -> list[str]:
        """Given parameter values the template does not declare or does not allow."""
        shared = self.shared
        return parameter_problems(shared.parameters, shared.values, shared.parameter_names)

    # -- values -------------------------------------------------------------

    def resolve(self, value: Any, path: str = "") -> Any:
        """A value as the template means it: an expression evaluated, `[[x` read as `[x`."""
        if isinstance(value, Failed):
            raise Invalid(value.message)
        if not isinstance(value, str):
            return value
        if is_expression(value):
            return evaluate(value, self)
        return literal(value)

    def deep(self, value: Any, tolerant: bool = False) -> Any:
        """`value` with every expression in it evaluated and property copy loops
        expanded. `tolerant`: a value that fails becomes Failed, reported with
        its key path when it is read."""
        if isinstance(value, str):
            if not tolerant:
                return self.resolve(value)
            try:
                return self.resolve(value)
            except Invalid as e:
                return Failed(str(e))
        if isinstance(value, list):
            return [self.deep(v, tolerant) for v in value]
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if key.lower() == "copy" and isinstance(item, list):
                    make = Template.tolerant if tolerant else Template.deep
                    out.update(self.copies(item, make))
                else:
                    out[key] = self.deep(item, tolerant)
            return out
        return value

    def tolerant(self, value: Any) -> Any:
        return self.deep(value, tolerant=True)

    def copies(
        self, loops: list[Any], make: Callable[[Template, Any], Any]
    ) -> dict[str, list[Any]]:
        """A property copy list ([{name, count, input}]) -> {name: [input per index]};
        each input is built by `make(scope, input)` in the loop's scope."""
        out: dict[str, list[Any]] = {}
        for loop in loops:
            spec = lower_keys(loop)
            name = spec.get("name")
            if not isinstance(name, str) or not name:
                raise Invalid("copy: every loop needs a name")
            count = self.count(spec.get("count"), name)
            if "input" not in spec:
                raise Invalid(f"copy {name!r}: no input")
            out[name] = [make(self.within(name, i), spec["input"]) for i in range(count)]
        return out

    def count(self, value: Any, name: str) -> int:
        count = self.resolve(value)
        if isinstance(count, str) and count.strip().isdigit():
            count = int(count)
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 800:
            raise Invalid(f"copy {name!r}: count must be an integer 0..800, not {count!r}")
        return count

    # -- functions ----------------------------------------------------------

    def call(self, name: str, args: list[Any], spelled: str) -> Any:
        own = _OWN.get(name)
        if own is not None:
            return own(self, args)
        function = FUNCTIONS.get(name)
        if function is not None:
            return function(args)
        if name.startswith("list"):
            raise Invalid(f"{spelled}() reads a secret that exists only in Azure; not available")
        raise Invalid(f"unknown template function {spelled}()")

    def parameter(self, args: list[Any]) -> Any:
        name = _one_name("parameters", args)
        key = name.lower()
        shared = self.shared
        if key in shared.parameter_cache:
            return shared.parameter_cache[key]
        if key not in shared.parameters:
            raise Invalid(f"no parameter named {name!r}")
        declared = lower_keys(shared.parameters[key])
        if key in shared.values:
            value = coerce(name, declared, shared.values[key])
        elif "defaultvalue" in declared:
            value = self._guarded(f"parameters('{name}')", declared["defaultvalue"])
        else:  # named as declared: the name a parameters file uses
            declared_name = next((n for n in shared.parameter_names if n.lower() == key), name)
            raise Invalid(
                f"parameter {declared_name!r} has no value and no defaultValue: "
                f"give it with --parameters {declared_name}=..."
            )
        shared.parameter_cache[key] = value
        return value

    def variable(self, args: list[Any]) -> Any:
        name = _one_name("variables", args)
        key = name.lower()
        shared = self.shared
        if key in shared.variable_cache:
            return shared.variable_cache[key]
        if key in shared.variable_copies:
            value = self._guarded(
                f"variables('{name}')",
                None,
                lambda: self.copies([shared.variable_copies[key]], Template.deep)[
                    str(lower_keys(shared.variable_copies[key])["name"])
                ],
            )
        elif key in shared.variables:
            value = self._guarded(f"variables('{name}')", shared.variables[key])
        else:
            raise Invalid(f"no variable named {name!r}")
        shared.variable_cache[key] = value
        return value

    def _guarded(self, what: str, value: Any, make: Callable[[], Any] | None = None) -> Any:
        stack = self.shared.evaluating
        if what in stack:
            cycle = " -> ".join([*stack[stack.index(what) :], what])
            raise Invalid(f"parameters and variables refer to each other in a loop: {cycle}")
        stack.append(what)
        try:
            return make() if make is not None else Template({}, {}, _shared=self.shared).deep(value)
        finally:
            stack.pop()

    def copy_index(self, args: list[Any]) -> int:
        offset, loop = 0, None
        for arg in args:
            if isinstance(arg, str):
                loop = arg.lower()
            elif isinstance(arg, int) and not isinstance(arg, bool):
                offset = arg
            else:
                raise Invalid(f"copyIndex(): unexpected argument {arg!r}")
        if not self.loops:
            raise Invalid("copyIndex() is used outside a copy loop")
        if loop is None:
            return self.loops[-1][1] + offset
        for name, index in reversed(self.loops):
            if name == loop:
                return index + offset
        raise Invalid(f"copyIndex(): no copy loop named {args[0]!r} around it")

    def declared(self, name: str) -> dict[str, Any] | None:
        """The resource of the document named `name`, evaluated (keys lower case)."""
        found = self.shared.resources.get(name.lower())
        if found is None:
            return None
        resource, scope = found
        return lower_keys(scope.deep(resource))

    def reference(self, args: list[Any]) -> Any:
        if not args or not isinstance(args[0], str):
            raise Invalid("reference() takes a resource name or id")
        target = args[0]
        name = target.rstrip("/").split("/")[-1]
        full = any(isinstance(a, str) and a.lower() == "full" for a in args[1:])
        declared = self.shared.resources.get(name.lower())
        data: dict[str, Any] = {}
        if declared is not None:
            # Only what is read is evaluated: a value that fails (a child
            # resource's connection string reading a database) is an error
            # only for the one who reads it; child resources are not the
            # resource's state.
            resource, scope = declared
            spec = {k: v for k, v in resource.items() if str(k).lower() != "resources"}
            if not full:
                spec = lower_keys(spec).get("properties") or {}
            evaluated = scope.tolerant(spec)
            data = evaluated if isinstance(evaluated, dict) else {}
            if str(resource.get("type", "")).lower() == arm_key_vault.VAULT_TYPE:
                uri = arm_key_vault.vault_uri(name, self.shared.context)
                holder = data.setdefault("properties", {}) if full else data
                if isinstance(holder, dict):
                    holder.setdefault("vaultUri", uri)
        for path, value in self.shared.references.items():
            head, _, rest = path.partition(".")
            if head.lower() == name.lower() and rest:
                keys = rest.split(".")
                if full and keys[0].lower() != "properties":
                    keys = ["properties", *keys]
                arm_scope.set_path(data, keys, value)
        return Deployed(name, data)


def _one_name(function: str, args: list[Any]) -> str:
    if len(args) != 1 or not isinstance(args[0], str):
        raise Invalid(f"{function}() takes one name")
    return args[0]


def _context(name: str) -> Callable[[Template, list[Any]], Any]:
    return lambda scope, args: scope.shared.context[name]


_OWN: dict[str, Callable[[Template, list[Any]], Any]] = {
    "parameters": Template.parameter,
    "variables": Template.variable,
    "copyindex": Template.copy_index,
    "reference": Template.reference,
    "resourceid": lambda t, a: arm_scope.resource_id(a, t.shared.context),
    "subscriptionresourceid": lambda t, a: arm_scope.subscription_resource_id(a, t.shared.context),
    "tenantresourceid": lambda t, a: arm_scope.tenant_resource_id(a),
    "extensionresourceid": lambda t, a: arm_scope.extension_resource_id(a),
    **{name: _context(name) for name in arm_scope.CONTEXT_NAMES},
}


def id_name(value: Any, collection: str, template: Template | None) -> str:
    """The name of the resource a resource id points at, in `collection`
    ("frontendPorts"); raises Invalid when it cannot be read."""
    if isinstance(value, Unresolved):
        raise value.invalid()
    if isinstance(value, Failed):
        raise Invalid(value.message)
    if not isinstance(value, str):
        raise Invalid("the id must be a string")
    text = value.strip()
    if template is not None:
        text = template.resolve(text)
        if not isinstance(text, str):
            raise Invalid(f"the id {value!r} is not a string")
    segments = [s.strip() for s in text.rstrip(_ID_PUNCTUATION).split("/") if s.strip()]
    if not segments:
        raise Invalid(f"{value!r} is not a resource id")
    if len(segments) >= 2 and segments[-2].lower() != collection.lower():
        raise Invalid(f"{value!r} is not the id of one of {collection}")
    return segments[-1]
