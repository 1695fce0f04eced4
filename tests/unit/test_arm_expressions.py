"""The template expression language, case by case against Microsoft's
template functions reference (the documented examples and their outputs)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from appgw.config.arm_expressions import parse
from appgw.config.arm_template import Template
from appgw.config.fields import Invalid

SUB = "00000000-0000-0000-0000-000000000000"
RG = f"/subscriptions/{SUB}/resourceGroups/appgw-local"


def ev(text: str, parameters: dict[str, Any] | None = None, **variables: Any) -> Any:
    declared = {k: {"type": "object", "defaultValue": v} for k, v in (parameters or {}).items()}
    return Template(declared, variables).resolve(text)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # grammar
        ("[  'it''s'  ]", "it's"),
        ("[concat('a', concat('b', toUpper('c')))]", "abC"),
        ("[createObject('one', createArray(1, 2, 3)).one[1]]", 2),
        ('[json(\'{"a": {"B": 5}}\').a.b]', 5),
        ("[json('{\"a\": {\"b\": 5}}')['a']['b']]", 5),
        ("[ToLower('ABC')]", "abc"),
        ("[add(-2, 3)]", 1),
        ("[true]", True),
        ("[[not an expression]", "[not an expression]"),
        ("plain", "plain"),
        # string functions
        (
            "[format('{0}, {1}. Formatted number: {2:N0}', 'Hello', 'User', 8175133)]",
            "Hello, User. Formatted number: 8,175,133",
        ),
        ("[format('{0:D3}-{{x}}', 7)]", "007-{x}"),
        ("[toLower('One Two Three')]", "one two three"),
        ("[toUpper('One Two Three')]", "ONE TWO THREE"),
        ("[replace('123-123-1234', '-', '')]", "1231231234"),
        ("[replace('123-123-1234', '1234', 'xxxx')]", "123-123-xxxx"),
        ("[split('one,two,three', ',')]", ["one", "two", "three"]),
        ("[join(createArray('abc', 'def', 'ghi'), ',')]", "abc,def,ghi"),
        ("[split('one;two,three', createArray(',', ';'))]", ["one", "two", "three"]),
        ("[substring('one two three', 1, 3)]", "ne "),
        ("[trim('    one two three   ')]", "one two three"),
        (
            "[uri('http://contoso.com/resources/', 'nested/azuredeploy.json')]",
            "http://contoso.com/resources/nested/azuredeploy.json",
        ),
        (
            "[uriComponent('http://contoso.com/resources/nested/azuredeploy.json')]",
            "http%3A%2F%2Fcontoso.com%2Fresources%2Fnested%2Fazuredeploy.json",
        ),
        (
            "[uriComponentToString('http%3A%2F%2Fcontoso.com%2Fresources%2Fnested%2Fazuredeploy.json')]",
            "http://contoso.com/resources/nested/azuredeploy.json",
        ),
        ("[base64('one, two, three')]", "b25lLCB0d28sIHRocmVl"),
        ("[base64ToString('b25lLCB0d28sIHRocmVl')]", "one, two, three"),
        ("[base64ToJson('eyJvbmUiOiAiYSIsICJ0d28iOiAiYiJ9')]", {"one": "a", "two": "b"}),
        ("[padLeft('123', 10, '0')]", "0000000123"),
        ("[startsWith('abcdef', 'AB')]", True),
        ("[endsWith('abcdef', 'ef')]", True),
        ("[indexOf('test', 't')]", 0),
        ("[lastIndexOf('test', 't')]", 3),
        ("[indexOf('abcdef', 'z')]", -1),
        (
            '[string(json(\'{"valueA": 10, "valueB": "Example Text"}\'))]',
            '{"valueA":10,"valueB":"Example Text"}',
        ),
        ("[string(createArray('a', 'b', 'c'))]", '["a","b","c"]'),
        ("[string(5)]", "5"),
        ("[concat('a', true, 1)]", "aTrue1"),
        # uniqueString: Azure's values for these inputs
        ("[uniqueString('test')]", "rbgf3xv4ufgzg"),
        ("[uniqueString('hello', 'world')]", "a7wkljktk6wne"),
        ("[uniqueString('abc')]", "cgtzqvhu4i23s"),
        (f"[uniqueString('{RG[:-11]}my-rg')]", "bmg7c6xu4tw46"),
        ("[uniqueString('foo', 'bar', 'baz')]", "xzi4ioaxtmth4"),
        # arrays and objects
        ("[concat(createArray('1-1', '1-2'), createArray('2-1'))]", ["1-1", "1-2", "2-1"]),
        ("[createArray(1, 2, 3)]", [1, 2, 3]),
        ("[createObject('intProp', 1, 'stringProp', 'abc')]", {"intProp": 1, "stringProp": "abc"}),
        (
            '[union(json(\'{"one":"a","two":"b","three":"c"}\'), '
            'json(\'{"three":"d","four":"e"}\'))]',
            {"one": "a", "two": "b", "three": "d", "four": "e"},
        ),
        (
            "[union(createArray('one', 'two', 'three'), createArray('three', 'four'))]",
            ["one", "two", "three", "four"],
        ),
        (
            "[intersection(createArray('one', 'two', 'three'), createArray('two', 'three'))]",
            ["two", "three"],
        ),
        ("[contains('OneTwoThree', 'e')]", True),
        ("[contains('OneTwoThree', 'z')]", False),
        ("[contains(json('{\"one\": \"a\"}'), 'one')]", True),
        ("[contains(createArray('one', 'two'), 'two')]", True),
        ("[empty('')]", True),
        ("[empty(createArray())]", True),
        ("[empty(json('{}'))]", True),
        ("[empty('a')]", False),
        ("[length(createArray('a', 'b', 'c'))]", 3),
        ("[length('One Two Three')]", 13),
        ("[first('One Two Three')]", "O"),
        ("[first(createArray('one', 'two'))]", "one"),
        ("[last('One Two Three')]", "e"),
        ("[last(createArray('one', 'two'))]", "two"),
        ("[take(createArray('one', 'two', 'three'), 2)]", ["one", "two"]),
        ("[take('One Two Three', 2)]", "On"),
        ("[skip(createArray('one', 'two', 'three'), 2)]", ["three"]),
        ("[skip('One Two Three', 4)]", "Two Three"),
        ("[json('null')]", None),
        ("[array('efgh')]", ["efgh"]),
        ("[array(1)]", [1]),
        ("[range(1, 3)]", [1, 2, 3]),
        ("[min(0, 3, 2, 5, 4)]", 0),
        ("[max(createArray(0, 3, 2, 5, 4))]", 5),
        ("[coalesce(null(), 'a')]", "a"),
        (
            '[items(json(\'{"b": 2, "a": 1}\'))]',
            [{"key": "a", "value": 1}, {"key": "b", "value": 2}],
        ),
        # logic and comparison
        ("[if(equals('a', 'a'), 'yes', 'no')]", "yes"),
        ("[if(false(), frobnicate(), 'lazy')]", "lazy"),
        ("[and(true(), false())]", False),
        ("[or(true(), false())]", True),
        ("[not(true())]", False),
        ("[equals(1, 1)]", True),
        ("[equals(createArray('a'), createArray('a'))]", True),
        ("[equals(1, '1')]", False),
        ("[greater(10, 5)]", True),
        ("[greater('A', 'a')]", False),
        ("[less('A', 'a')]", True),
        ("[greaterOrEquals(5, 5)]", True),
        ("[lessOrEquals(6, 5)]", False),
        ("[bool('true')]", True),
        ("[bool(0)]", False),
        # numbers
        ("[add(5, 3)]", 8),
        ("[sub(7, 3)]", 4),
        ("[mul(5, 3)]", 15),
        ("[div(8, 3)]", 2),
        ("[div(-8, 3)]", -2),
        ("[mod(7, 3)]", 1),
        ("[mod(-7, 3)]", -1),
        ("[int('4')]", 4),
        # ids and the deployment's context
        (
            "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'VNet1', 'Subnet1')]",
            f"{RG}/providers/Microsoft.Network/virtualNetworks/VNet1/subnets/Subnet1",
        ),
        (
            "[resourceId('otherRG', 'Microsoft.Storage/storageAccounts', 'st')]",
            f"/subscriptions/{SUB}/resourceGroups/otherRG/providers/Microsoft.Storage/storageAccounts/st",
        ),
        (
            "[resourceId('s1', 'rg1', 'Microsoft.Storage/storageAccounts', 'st')]",
            "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/st",
        ),
        (
            "[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'r1')]",
            f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/r1",
        ),
        (
            "[tenantResourceId('Microsoft.Authorization/policyDefinitions', 'p1')]",
            "/providers/Microsoft.Authorization/policyDefinitions/p1",
        ),
        (
            "[extensionResourceId(resourceGroup().id, 'Microsoft.Authorization/locks', 'l1')]",
            f"{RG}/providers/Microsoft.Authorization/locks/l1",
        ),
        ("[resourceGroup().location]", "local"),
        ("[subscription().subscriptionId]", SUB),
        ("[environment().suffixes.keyvaultDns]", ".vault.azure.net"),
        ("[deployment().name]", "appgw"),
    ],
)
def test_documented_examples(expression: str, expected: Any) -> None:
    assert ev(expression) == expected


def test_guid_is_arm_s_name_based_uuid() -> None:
    namespace = uuid.UUID("11fb06fb-712d-4ddd-98c7-e71bbd588830")
    value = ev("[guid('a', 'b', 'c')]")
    assert value == str(uuid.uuid5(namespace, "a-b-c"))
    assert uuid.UUID(value).version == 5
    assert ev("[guid(resourceGroup().id)]") == ev("[guid(resourceGroup().id)]")


def test_parse_is_cached_and_keeps_the_spelling() -> None:
    assert parse("[uniqueString('x')]") is parse("[uniqueString('x')]")
    assert parse("[uniqueString('x')]")[3] == "uniqueString"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("[frobnicate(1)]", "unknown template function frobnicate()"),
        ("[my.fn(1)]", "unknown template function my.fn()"),
        ("[concat('a']", "expected ')'"),
        ("[concat('a'))]", "unexpected ')'"),
        ("[add(1, 'a')]", "add(): expected int"),
        ("[div(1, 0)]", "division by zero"),
        ("[substring('abc', 2, 5)]", "outside the string"),
        ("[json('{bad')]", "json(): not valid JSON"),
        ("[createObject('a')]", "pairs"),
        ("[toLower(1)]", "toLower(): expected string"),
        ("[json('{\"a\": 1}').b]", "no property 'b' (it has: a)"),
        ("[createArray(1)[3]]", "out of range"),
        ("[if(1, 2, 3)]", "if(): the condition must be true or false"),
        ("[format('{1}', 'a')]", "only 1 value(s) given"),
        ("[copyIndex()]", "outside a copy loop"),
        ("[listKeys('st', '2019-01-01')]", "exists only in Azure"),
        ("[concat('a' 'b')]", "expected ')'"),
    ],
)
def test_errors_name_the_function_or_token(expression: str, message: str) -> None:
    with pytest.raises(Invalid) as caught:
        ev(expression)
    assert message in str(caught.value)


def test_variables_hold_expressions_and_refer_to_variables() -> None:
    variables = {
        "prefix": "[toLower('GW')]",
        "name": "[concat(variables('prefix'), '-', parameters('env'))]",
        "ports": {"http": "[add(40, 40)]", "list": ["[variables('name')]"]},
    }
    declared = {"env": {"type": "string", "defaultValue": "dev"}}
    template = Template(declared, variables)
    assert template.resolve("[variables('name')]") == "gw-dev"
    assert template.resolve("[variables('ports').http]") == 80
    assert template.resolve("[variables('ports').list[0]]") == "gw-dev"
    assert template.resolve("[variables('NAME')]") == "gw-dev"  # names are case-insensitive


def test_a_loop_among_variables_is_reported() -> None:
    template = Template({}, {"a": "[variables('b')]", "b": "[concat(variables('a'))]"})
    with pytest.raises(Invalid, match=r"in a loop: variables\('a'\) -> variables\('b'\) -> "):
        template.resolve("[variables('a')]")


def test_variable_copy_loops() -> None:
    variables = {
        "copy": [
            {"name": "ports", "count": 3, "input": "[add(8080, copyIndex('ports'))]"},
            {
                "name": "pools",
                "count": "[length(variables('ports'))]",
                "input": {"name": "[concat('pool', copyIndex('pools', 1))]"},
            },
        ]
    }
    template = Template({}, variables)
    assert template.resolve("[variables('ports')]") == [8080, 8081, 8082]
    assert template.resolve("[variables('pools')[2].name]") == "pool3"


def test_property_copy_loops_in_values() -> None:
    value = {
        "copy": [
            {
                "name": "backendAddresses",
                "count": 2,
                "input": {"ipAddress": "[concat('127.0.0.', copyIndex(2))]"},
            }
        ],
        "other": "[concat('x', 'y')]",
    }
    assert Template({}, {}).deep(value) == {
        "backendAddresses": [{"ipAddress": "127.0.0.2"}, {"ipAddress": "127.0.0.3"}],
        "other": "xy",
    }


def test_parameter_values_win_over_defaults_and_are_converted() -> None:
    declared = {
        "port": {"type": "int", "defaultValue": 80},
        "on": {"type": "bool"},
        "tier": {"type": "string", "allowedValues": ["Standard_v2", "WAF_v2"]},
    }
    template = Template(declared, {}, values={"PORT": "8080", "on": "true", "tier": "WAF_v2"})
    assert template.problems() == []
    assert template.resolve("[parameters('port')]") == 8080
    assert template.resolve("[parameters('on')]") is True
    wrong = Template(declared, {}, values={"tier": "Basic", "nope": 1})
    assert wrong.problems() == [
        'parameters.tier: parameter \'tier\': "Basic" is not one of "Standard_v2", "WAF_v2"',
        "--parameters: the template has no parameter named 'nope' (it has: on, port, tier)",
    ]


def test_reference_reads_the_document_or_names_the_flag() -> None:
    template = Template({}, {}, references={"web.outputs.fqdn.value": "127.0.0.2"})
    template.shared.resources["pip"] = (
        {"name": "pip", "properties": {"dnsSettings": {"domainNameLabel": "[toLower('GW')]"}}},
        template,
    )
    assert template.resolve("[reference('pip').dnsSettings.domainNameLabel]") == "gw"
    assert template.resolve("[reference('web').outputs.fqdn.value]") == "127.0.0.2"
    with pytest.raises(Invalid) as caught:
        template.resolve("[concat('http://', reference('pip').ipAddress)]")
    assert str(caught.value) == (
        "pip.ipAddress exists only once deployed in Azure; "
        "give it with --reference pip.ipAddress=VALUE"
    )
    with pytest.raises(Invalid, match="--reference other.outputs.x.value=VALUE"):
        template.resolve(
            "[reference(resourceId('Microsoft.Resources/deployments', 'other')).outputs.x.value]"
        )


def test_context_values_can_be_overridden() -> None:
    template = Template({}, {}, references={"resourceGroup.location": "westeurope"})
    assert template.resolve("[resourceGroup().location]") == "westeurope"
    assert template.resolve("[resourceGroup().name]") == "appgw-local"
