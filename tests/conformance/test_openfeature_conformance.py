"""OpenFeature's own conformance scenarios (``openfeature_spec/``, from open-feature/spec),
run against ``PostHogProvider`` and the devserver serving the spec's flags as PostHog
definitions (``openfeature_flags``).

Each scenario runs twice: with local evaluation (a secret key: flags decided from the
polled definitions) and without (each context asked of PostHog, then cached). The
context-merging scenarios run only without: the merged context is read back from the
request PostHog received. A scenario that cannot hold for PostHog is listed in
``NOT_APPLICABLE`` with the reason, and in docs/openfeature.md; it is expected to fail, strictly,
so one that starts passing must leave the list.

Harness choices: PostHog decides flags for a person, so "a stable provider" also gives
the API-level context a targeting key (the spec's scenarios name none); "a not ready
provider" is one whose first answer PostHog holds back, "an error provider" one whose
PostHog fails, "a fatal provider" one whose project API key PostHog refuses, and "a
stale provider" one whose definitions polls have failed past ``stale_after``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagEvaluationOptions
from openfeature.hook import Hook
from openfeature.provider import ProviderStatus
from openfeature.transaction_context import (
    ContextVarsTransactionContextPropagator,
    clear_transaction_context_propagator,
    get_transaction_context,
    set_transaction_context,
    set_transaction_context_propagator,
)

from posthog_otel import PostHogClient, PostHogFlagProvider
from posthog_otel.openfeature import PostHogProvider
from tests.support import openfeature_flags, paths
from tests.support.gherkin import Scenario, Steps, load
from tests.support.server import API_KEY, wait_until

SPEC = Path(__file__).parent / "openfeature_spec"
FEATURES = ("evaluation", "evaluation_v2", "hooks", "metadata", "contextMerging")
SECRET = "phs_conformance_0123456789"
DEFINITION_PATHS = ("/flags/definitions", "/api/feature_flag/local_evaluation")
TARGETING_KEY = "conformance-user"
MODES = ("local", "remote")

STATIC_REMOTE = (
    "PostHog's answer does not say a value is the same for everyone; only local "
    "evaluation, which reads the definitions, reports STATIC (here TARGETING_MATCH)"
)
NOT_APPLICABLE: dict[tuple[str, str], str] = {
    # (mode or "both", scenario id): why
    ("both", "Returns metadata"): "PostHog flags carry no metadata of their own to return",
    ("both", "Flag metadata in evaluation details"): (
        "PostHog flags carry no metadata of their own to return"
    ),
    **{
        ("both", f"Returns no metadata [{row}]"): (
            "a PostHog flag always has metadata: its id, version and PostHog's reason"
        )
        for row in (
            "boolean-flag, Boolean, true",
            "integer-flag, Integer, 23",
            "float-flag, Float, 2.3",
            "string-flag, String, value",
        )
    },
    ("both", "Type mismatch error [boolean-flag, String, bye]"): (
        "boolean-flag is a multivariate PostHog flag (variants on and off, carrying JSON "
        "booleans), and a multivariate flag read as a string gives its variant: 'on'"
    ),
    ("local", "CACHED reason [boolean-flag, Boolean, false]"): (
        "local evaluation decides every read afresh from the definitions: nothing is cached"
    ),
    ("local", "CACHED reason [string-flag, String, bye]"): (
        "local evaluation decides every read afresh from the definitions: nothing is cached"
    ),
    ("remote", "Provider status accessibility [stale, STALE]"): (
        "without local evaluation there are no definitions to go stale; each read says "
        "STALE when PostHog is unreachable and a cached answer serves"
    ),
    **{
        ("remote", name): STATIC_REMOTE
        for name in (
            "Resolves boolean details",
            "Resolves string details",
            "Resolves integer details",
            "Resolves float details",
            "Resolves object details",
            "Structure flag evaluation",
            "Passes evaluation details to after and finally hooks",
            "Resolves zero value [boolean-zero-flag, Boolean, true, false]",
            "Resolves zero value [string-zero-flag, String, hi, ]",
            "Resolves zero value [integer-zero-flag, Integer, 1, 0]",
            "Resolves zero value [float-zero-flag, Float, 0.1, 0.0]",
            'Resolves zero value [object-zero-flag, Object, {\\"a\\": 1}, {}]',
            "Complete evaluation details structure [boolean-flag, Boolean, false, true, on]",
            "Complete evaluation details structure [string-flag, String, bye, hi, greeting]",
            "Complete evaluation details structure [integer-flag, Integer, 1, 10, ten]",
            "Complete evaluation details structure [float-flag, Float, 0.1, 0.5, half]",
            "Complete evaluation details structure [object-flag, Object, {}, "
            '{\\"showImages\\": true,\\"title\\": \\"Check out these pics!\\",'
            '\\"imagesPerPage\\": 100}, template]',
        )
    },
}


def _cases() -> list[Any]:
    cases = []
    for feature in FEATURES:
        for scenario in load(SPEC / f"{feature}.feature"):
            for mode in MODES:
                if feature == "contextMerging" and mode == "local":
                    continue  # the merged context is read from the request PostHog gets
                why = NOT_APPLICABLE.get((mode, scenario.id)) or NOT_APPLICABLE.get(
                    ("both", scenario.id)
                )
                marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
                ident = f"{mode}:{feature}:{scenario.id}"
                cases.append(pytest.param(mode, scenario, id=ident, marks=marks))
    return cases


CASES = _cases()


def test_every_scenario_is_read():
    # 29 context-merging rows, run once; the others twice.
    assert len(CASES) == 29 + 2 * (13 + 82 + 3 + 5)
    known = {c.values[1].id for c in CASES}
    assert {name for _, name in NOT_APPLICABLE} <= known


def test_the_docs_list_what_is_not_applicable():
    page = (paths.ROOT / "docs" / "openfeature.md").read_text()
    section = page.split("**Conformance.**", 1)[1]
    section = " ".join(section.split())  # as wrapped on the page
    for _, name in NOT_APPLICABLE:
        assert name.split(" [")[0] in section, name


@pytest.mark.parametrize(("mode", "scenario"), CASES)
def test_scenario(mode: str, scenario: Scenario, server):
    spec_flags = json.loads((SPEC / "test-flags.json").read_text())
    spec_flags["context-aware"] = openfeature_flags.CONTEXT_AWARE
    server.set_flags(openfeature_flags.definitions(spec_flags))
    world = World(mode, server)
    try:
        STEPS.run(scenario, world)
    finally:
        world.close()


class World:
    """One scenario's state: the server, providers made, the flag read and its details."""

    def __init__(self, mode: str, server: Any) -> None:
        self.mode = mode
        self.server = server
        self.made: list[tuple[PostHogClient, PostHogFlagProvider]] = []
        self.client = api.get_client()
        self.kind = "boolean"
        self.key = ""
        self.default: Any = None
        self.context: dict[str, Any] = {}
        self.invocation: dict[str, Any] = {}
        self.original: dict[str, Any] | None = None
        self.options: FlagEvaluationOptions | None = None
        self.details: Any = None
        self.recorder = Recorder("hook")
        self.levels: list[str] = []
        self.ticks = 0
        self.transactions = False

    def provider(self, *, api_key: str = API_KEY, **options: Any) -> PostHogProvider:
        secret = SECRET if self.mode == "local" else None
        client = PostHogClient(
            api_key, self.server.url, timeout=2.0, retry_delay=0.01, secret_key=secret
        )
        interval = options.pop("poll_interval", 30.0)
        flags = PostHogFlagProvider(client, send_feature_flag_events=False, poll_interval=interval)
        self.made.append((client, flags))
        return PostHogProvider(flags, init_timeout=options.pop("init_timeout", 5.0), **options)

    def first_answer_paths(self) -> tuple[str, ...]:
        return DEFINITION_PATHS if self.mode == "local" else ("/decide",)

    def evaluate(self, *, context: dict[str, Any] | None = None) -> Any:
        attributes = self.context if context is None else context
        ctx = EvaluationContext(attributes=attributes) if attributes else None
        read = getattr(self.client, f"get_{self.kind}_details")
        return read(self.key, self.default, ctx, self.options)

    def close(self) -> None:
        api.clear_providers()
        api.clear_hooks()
        api.set_evaluation_context(EvaluationContext())
        clear_transaction_context_propagator()
        self.server.faults.clear()
        for client, flags in self.made:
            flags.shutdown(timeout=2.0)
            client.close()


class Recorder(Hook):
    """A hook that notes each stage it runs, with what it was given, in ``log``."""

    def __init__(self, name: str, log: list[tuple[str, str, Any]] | None = None) -> None:
        self.name = name
        self.log: list[tuple[str, str, Any]] = [] if log is None else log
        self.adds: dict[str, Any] = {}

    def before(self, hook_context: Any, hints: Any) -> EvaluationContext | None:
        self.log.append((self.name, "before", None))
        return EvaluationContext(attributes=dict(self.adds)) if self.adds else None

    def after(self, hook_context: Any, details: Any, hints: Any) -> None:
        self.log.append((self.name, "after", details))

    def error(self, hook_context: Any, exception: Exception, hints: Any) -> None:
        self.log.append((self.name, "error", exception))

    def finally_after(self, hook_context: Any, details: Any, hints: Any) -> None:
        self.log.append((self.name, "finally", details))

    def stages(self) -> list[str]:
        return [stage for _, stage, _ in self.log]


STEPS = Steps()
QUOTED = r'"((?:[^"\\]|\\.)*)"'


def unquote(text: str) -> str:
    return text.replace('\\"', '"')


def typed(kind: str, text: str) -> Any:
    """A step's value as the flag type: ``"true"``, ``10``, ``0.5``, JSON for objects."""
    text = unquote(text)
    kind = kind.lower()
    if kind == "boolean":
        return {"true": True, "false": False}[text]
    if kind == "integer":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "object":
        return None if text == "null" else json.loads(text)
    return text


# -- providers ---------------------------------------------------------------------------


@STEPS.define(r"a stable provider")
def stable_provider(world: World) -> None:
    api.set_evaluation_context(EvaluationContext(targeting_key=TARGETING_KEY))
    api.set_provider_and_wait(world.provider())
    world.client = api.get_client()


@STEPS.define(r"a stable provider with retrievable context is registered")
def retrievable_provider(world: World) -> None:
    stable_provider(world)


@STEPS.define(r"a not ready provider")
def not_ready_provider(world: World) -> None:
    world.server.faults.delay(seconds=1.0, times=1, paths=world.first_answer_paths())
    api.set_provider(world.provider())
    world.client = api.get_client()


@STEPS.define(r"a error provider")
def error_provider(world: World) -> None:
    world.server.faults.respond(503, times=100, paths=world.first_answer_paths())
    api.set_provider(world.provider())
    world.client = api.get_client()
    wait_until(lambda: world.client.get_provider_status() != ProviderStatus.NOT_READY)


@STEPS.define(r"a fatal provider")
def fatal_provider(world: World) -> None:
    world.server.api_key = API_KEY
    api.set_provider(world.provider(api_key="phc_not_this_project_0123"))
    world.client = api.get_client()
    wait_until(lambda: world.client.get_provider_status() != ProviderStatus.NOT_READY)


@STEPS.define(r"a stale provider")
def stale_provider(world: World) -> None:
    api.set_provider_and_wait(world.provider(poll_interval=0.05, stale_after=0.2))
    world.server.faults.respond(503, times=10_000, paths=DEFINITION_PATHS)
    world.client = api.get_client()
    wait_until(lambda: world.client.get_provider_status() == ProviderStatus.STALE)


@STEPS.define(r"the provider status should be " + QUOTED)
def provider_status(world: World, status: str) -> None:
    assert world.client.get_provider_status().value == status


# -- flags, contexts, evaluation ------------------------------------------------------------


@STEPS.define(r"a (\w+)-flag with key " + QUOTED + " and a fallback value " + QUOTED)
def a_flag(world: World, kind: str, key: str, default: str) -> None:
    world.kind, world.key = kind.lower(), key
    world.default = typed(kind, default)


@STEPS.define(
    r"a context containing a key " + QUOTED + ', with type ("\\w+") and with value ' + QUOTED
)
def context_value(world: World, key: str, kind: str, value: str) -> None:
    kind = kind.strip('"').lower()
    world.context[key] = {"string": str, "integer": int, "float": float}.get(
        kind, lambda v: {"true": True, "false": False}[v]
    )(value)


@STEPS.define(r"a context containing a key " + QUOTED + " with null value")
def context_null(world: World, key: str) -> None:
    world.context[key] = None


@STEPS.define(r"the flag was evaluated with details")
def evaluated(world: World) -> None:
    world.details = world.evaluate()


@STEPS.define(r"the flag was evaluated with details asynchronously")
def evaluated_async(world: World) -> None:
    read = getattr(world.client, f"get_{world.kind}_details_async")

    async def main() -> Any:
        done = asyncio.Event()

        async def tick() -> None:
            while not done.is_set():
                world.ticks += 1
                await asyncio.sleep(0.001)

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        try:
            return await read(world.key, world.default)
        finally:
            done.set()
            await ticker

    world.details = asyncio.run(main())


@STEPS.define(r"the evaluation should complete without blocking")
def without_blocking(world: World) -> None:
    assert world.details is not None
    assert world.ticks >= 1  # the loop ran its other task; held requests: test_openfeature


@STEPS.define(r"the resolved details value should be " + QUOTED)
def details_value(world: World, value: str) -> None:
    assert world.details.value == typed(world.kind, value)
    assert type(world.details.value) is type(typed(world.kind, value))


@STEPS.define(r"the reason should be " + QUOTED)
def reason(world: World, expected: str) -> None:
    assert world.details.reason == expected


@STEPS.define(r"the error-code should be " + QUOTED)
def error_code(world: World, expected: str) -> None:
    assert world.details.error_code == expected


@STEPS.define(r"the flag key should be " + QUOTED)
def flag_key(world: World, expected: str) -> None:
    assert world.details.flag_key == expected


@STEPS.define(r"the variant should be " + QUOTED)
def variant(world: World, expected: str) -> None:
    assert world.details.variant == expected


@STEPS.define(r"the resolved metadata should contain")
def metadata_contains(world: World, table: Any) -> None:
    _, *rows = table
    for key, kind, value in rows:
        assert world.details.flag_metadata.get(key) == typed(kind, value), key


@STEPS.define(r"the resolved metadata is empty")
def metadata_empty(world: World) -> None:
    assert not world.details.flag_metadata


@STEPS.define(r"an evaluation context with modifiable data")
def modifiable_context(world: World) -> None:
    world.context = {"test_key": "test_value"}
    world.original = dict(world.context)


@STEPS.define(r"the original evaluation context should remain unmodified")
def context_unmodified(world: World) -> None:
    assert world.context == world.original


@STEPS.define(r"the evaluation details should be immutable")
def details_immutable(world: World) -> None:
    # What a provider controls: the flag metadata it returns cannot be changed.
    metadata = world.details.flag_metadata
    assert metadata  # PostHog's id, version and reason
    with pytest.raises(TypeError):
        metadata["flag_id"] = -1


# -- hooks ------------------------------------------------------------------------------------


@STEPS.define(r"a client with added hook")
def client_hook(world: World) -> None:
    world.client.add_hooks([world.recorder])


@STEPS.define(r"the " + QUOTED + " hook should have been executed")
def hook_ran(world: World, stage: str) -> None:
    assert stage in world.recorder.stages()


@STEPS.define(r"the " + QUOTED + " hooks should be called with evaluation details")
def hooks_saw(world: World, stages: str, table: Any) -> None:
    _, *rows = table
    for stage in (s.strip() for s in stages.split(",")):
        (details,) = [d for _, st, d in world.recorder.log if st == stage]
        for kind, key, value in rows:
            expected = None if value == "null" else typed(kind, value)
            assert getattr(details, key) == expected, (stage, key)


@STEPS.define(r"evaluation options containing specific hooks")
def options_hooks(world: World) -> None:
    log: list[tuple[str, str, Any]] = []
    world.options = FlagEvaluationOptions(hooks=[Recorder("first", log), Recorder("second", log)])


@STEPS.define(r"the flag was evaluated with details using the evaluation options")
def evaluated_with_options(world: World) -> None:
    evaluated(world)


@STEPS.define(r"the specified hooks should execute during evaluation")
def option_hooks_ran(world: World) -> None:
    assert world.options is not None
    log = world.options.hooks[0].log  # type: ignore[attr-defined]
    assert {name for name, _, _ in log} == {"first", "second"}


@STEPS.define(r"the hook order should be maintained")
def hook_order(world: World) -> None:
    assert world.options is not None
    log = world.options.hooks[0].log  # type: ignore[attr-defined]
    order = [(name, stage) for name, stage, _ in log]
    # Before hooks run in the order given; after and finally hooks in reverse.
    assert order == [
        ("first", "before"),
        ("second", "before"),
        ("second", "after"),
        ("first", "after"),
        ("second", "finally"),
        ("first", "finally"),
    ]


# -- context merging ------------------------------------------------------------------------


def add_entry(world: World, level: str, key: str, value: str) -> None:
    entry = EvaluationContext(attributes={key: value})
    if level == "API":
        api.set_evaluation_context(api.get_evaluation_context().merge(entry))
    elif level == "Transaction":
        if not world.transactions:
            set_transaction_context_propagator(ContextVarsTransactionContextPropagator())
            world.transactions = True
        set_transaction_context(get_transaction_context().merge(entry))
    elif level == "Client":
        world.client.context = world.client.context.merge(entry)
    elif level == "Invocation":
        world.invocation[key] = value
    elif level == "Before Hooks":
        if world.recorder not in world.client.hooks:
            world.client.add_hooks([world.recorder])
        world.recorder.adds[key] = value
    else:
        raise ValueError(f"no level {level!r}")


@STEPS.define(
    r"A context entry with key "
    + QUOTED
    + " and value "
    + QUOTED
    + " is added to the "
    + QUOTED
    + " level"
)
def context_entry(world: World, key: str, value: str, level: str) -> None:
    add_entry(world, level, key, value)


@STEPS.define(r"A table with levels of increasing precedence")
def precedence(world: World, table: Any) -> None:
    world.levels = [row[0] for row in table]


@STEPS.define(
    r"Context entries for each level from API level down to the "
    + QUOTED
    + r" level, with key "
    + QUOTED
    + " and value "
    + QUOTED
)
def entries_down_to(world: World, last: str, key: str, value: str) -> None:
    assert value == last  # each level writes its own name; the last one must win
    for level in world.levels[: world.levels.index(last) + 1]:
        add_entry(world, level, key, level)


@STEPS.define(r"Some flag was evaluated")
def some_flag(world: World) -> None:
    world.kind, world.key, world.default = "boolean", "boolean-flag", False
    world.details = world.evaluate(context=world.invocation)


@STEPS.define(r"The merged context contains an entry with key " + QUOTED + " and value " + QUOTED)
def merged_contains(world: World, key: str, value: str) -> None:
    # What PostHog was sent: the context the provider resolved with, as person properties.
    asked = world.server.requests.matching("/decide")[-1].json()
    assert asked["distinct_id"] == TARGETING_KEY
    assert asked["person_properties"][key] == value


# -- the deprecated evaluation.feature -------------------------------------------------------

KINDS = {
    "a boolean": "boolean",
    "a string": "string",
    "an integer": "integer",
    "a float": "float",
    "an object": "object",
}
FLAG = r"(a boolean|a string|an integer|a float|an object) flag with key " + QUOTED


@STEPS.define(
    FLAG + r" is evaluated with (details and )?(?:default value (.+)|a null default value)"
)
def old_evaluated(
    world: World, kind: str, key: str, details: str | None, default: str | None
) -> None:
    world.kind, world.key = KINDS[kind], key
    world.default = None if default is None else typed(world.kind, default.strip('"'))
    if details:
        world.details = world.evaluate()
    else:
        world.details = getattr(world.client, f"get_{world.kind}_value")(key, world.default)


@STEPS.define(r"the resolved (boolean|string|integer|float) value should be (.+)")
def old_value(world: World, kind: str, value: str) -> None:
    assert world.details == typed(kind, value.strip('"'))


@STEPS.define(
    r"the resolved (boolean|string|integer|float) details value should be (.+), the variant should be "
    + QUOTED
    + ", and the reason should be "
    + QUOTED
)
def old_details(world: World, kind: str, value: str, variant_name: str, why: str) -> None:
    assert world.details.value == typed(kind, value.strip('"'))
    assert (world.details.variant, world.details.reason) == (variant_name, why)


@STEPS.define(
    r"the resolved object (?:details )?value should be contain fields "
    + QUOTED
    + ", "
    + QUOTED
    + ", and "
    + QUOTED
    + ", with values "
    + QUOTED
    + ", "
    + QUOTED
    + r" and (\d+), respectively"
)
def old_object(world: World, a: str, b: str, c: str, va: str, vb: str, vc: str) -> None:
    value = world.details if isinstance(world.details, dict) else world.details.value
    assert value == {a: typed("boolean", va), b: vb, c: int(vc)}


@STEPS.define(r"the variant should be " + QUOTED + ", and the reason should be " + QUOTED)
def old_variant_reason(world: World, variant_name: str, why: str) -> None:
    assert (world.details.variant, world.details.reason) == (variant_name, why)


@STEPS.define(
    r"context contains keys "
    + ", ".join([QUOTED] * 4)
    + r" with values "
    + QUOTED
    + ", "
    + QUOTED
    + r", (\d+), "
    + QUOTED
)
def old_context(world: World, *found: str) -> None:
    keys, values = found[:4], (found[4], found[5], int(found[6]), found[7])
    world.context = dict(zip(keys, values, strict=True))


@STEPS.define(r"a flag with key " + QUOTED + " is evaluated with default value " + QUOTED)
def old_context_flag(world: World, key: str, default: str) -> None:
    world.kind, world.key, world.default = "string", key, default
    world.details = world.evaluate()


@STEPS.define(r"the resolved string response should be " + QUOTED)
def old_string_response(world: World, value: str) -> None:
    assert world.details.value == value


@STEPS.define(r"the resolved flag value is " + QUOTED + " when the context is empty")
def old_empty_context(world: World, value: str) -> None:
    assert world.evaluate(context={}).value == value


@STEPS.define(
    r"a non-existent string flag with key "
    + QUOTED
    + r" is evaluated with details and a fallback value "
    + QUOTED
)
def old_missing(world: World, key: str, default: str) -> None:
    world.kind, world.key, world.default = "string", key, default
    world.details = world.evaluate()


@STEPS.define(
    r"a string flag with key "
    + QUOTED
    + r" is evaluated as an integer, with details and a fallback value (\d+)"
)
def old_wrong_type(world: World, key: str, default: str) -> None:
    world.kind, world.key, world.default = "integer", key, int(default)
    world.details = world.evaluate()


@STEPS.define(r"the default (string|integer) value should be returned")
def old_default_returned(world: World, kind: str) -> None:
    assert world.details.value == world.default


@STEPS.define(
    r"the reason should indicate an error and the error code should indicate (?:a missing flag|a type mismatch) with "
    + QUOTED
)
def old_error(world: World, code: str) -> None:
    assert (world.details.reason, world.details.error_code) == ("ERROR", code)
