"""Settings: validation names the setting, env variables and precedence, no key leaks."""

from __future__ import annotations

import math

import pytest

from posthog_otel import ConfigurationError, PostHogClient
from posthog_otel._config import ENV_VARIABLES, ClientConfig

KEY = "phc_config_Secret_9876"


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"api_key": ""}, "api_key"),
        ({"api_key": "   "}, "api_key"),
        ({"api_key": None}, "api_key"),
        ({"host": "ftp://example.com"}, "host"),
        ({"host": "example.com"}, "host"),
        ({"host": "https://"}, "host"),
        ({"host": "https://h.example/?q=1"}, "host"),
        ({"host": "https://h.example:99999"}, "host"),
        ({"host": 42}, "host"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": math.nan}, "timeout"),
        ({"timeout": math.inf}, "timeout"),
        ({"timeout": "5"}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"flags_timeout": -0.5}, "flags_timeout"),
        ({"retry_delay": -1}, "retry_delay"),
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"retries": True}, "retries"),
        ({"enabled_capture": "yes"}, "enabled_capture"),
        ({"gzip": 1}, "gzip"),
        ({"flags_path": "decide/"}, "flags_path"),
        ({"headers": {"X-Bad\r\nInjected": "1"}}, "headers"),
        ({"headers": {"X-Ok": "a\nb"}}, "headers"),
        ({"headers": {"X-Num": 1}}, "headers"),
        ({"headers": [("a", "b")]}, "headers"),
        ({"ca_bundle": "/no/such/ca.pem"}, "ca_bundle"),
    ],
)
def test_bad_settings_raise_naming_the_setting(overrides, setting):
    kwargs = {"api_key": KEY, **overrides}
    with pytest.raises(ConfigurationError) as info:
        ClientConfig(**kwargs)
    assert info.value.setting == setting
    assert str(info.value).startswith(setting + ":")
    assert KEY not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_good_settings_are_normalised():
    config = ClientConfig(api_key=f"  {KEY} ", host="https://eu.i.posthog.com/", retry_delay=0)
    assert config.api_key == KEY
    assert config.host == "https://eu.i.posthog.com"
    assert config.retry_delay == 0


def test_repr_hides_the_key():
    config = ClientConfig(api_key=KEY)
    assert KEY not in repr(config)
    assert KEY not in repr(PostHogClient(KEY))
    assert KEY not in str(PostHogClient(KEY))


@pytest.mark.parametrize(
    "host", ["https://user:hunter2pw@h.example", "https://token@h.example", "http://:hunter2pw@h"]
)
def test_a_host_with_user_info_is_refused_without_echoing_it(host, monkeypatch):
    with pytest.raises(ConfigurationError, match="user name or password") as info:
        ClientConfig(api_key=KEY, host=host)
    assert info.value.setting == "host"
    assert "hunter2pw" not in str(info.value) and "token@" not in str(info.value)
    monkeypatch.setenv("POSTHOG_HOST", host)
    with pytest.raises(ConfigurationError) as info:
        ClientConfig.from_env(api_key=KEY)
    assert info.value.setting == "POSTHOG_HOST"


def test_custom_headers_are_in_no_repr(server):
    from posthog_otel import PostHogFlagProvider, PostHogSpanExporter, PostHogSpanProcessor

    secret = "Bearer hdr-Secret-42"
    config = ClientConfig(api_key=KEY, headers={"Authorization": secret})
    client = PostHogClient(KEY, server.url, headers={"Authorization": secret})
    processor = PostHogSpanProcessor(client)
    shown = [
        repr(config),
        str(config),
        repr(client),
        repr(processor),
        repr(PostHogSpanExporter(client)),
        repr(PostHogFlagProvider(client, send_feature_flag_events=False)),
    ]
    processor.shutdown()
    client.close()
    assert [text for text in shown if "hdr-Secret" in text] == []


def test_from_env_reads_every_variable(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked until a TLS connection is made")
    env = {
        "POSTHOG_API_KEY": KEY,
        "POSTHOG_HOST": "http://127.0.0.1:9",
        "POSTHOG_TIMEOUT": "2.5",
        "POSTHOG_RETRIES": "7",
        "POSTHOG_RETRY_DELAY": "0.25",
        "POSTHOG_ENABLED_CAPTURE": "false",
        "POSTHOG_GZIP": "0",
        "POSTHOG_HEADERS": "X-Team=growth,X-Note=a%20b",
        "POSTHOG_FLAGS_PATH": "/flags/?v=2",
        "POSTHOG_FLAGS_TIMEOUT": "1",
        "POSTHOG_CA_BUNDLE": str(ca),
        "POSTHOG_SECRET_KEY": "phs_project_secret",
    }
    assert set(env) == set(ENV_VARIABLES.values())
    config = ClientConfig.from_env(env)
    assert config.api_key == KEY
    assert config.host == "http://127.0.0.1:9"
    assert (config.timeout, config.retries, config.retry_delay) == (2.5, 7, 0.25)
    assert (config.enabled_capture, config.gzip) == (False, False)
    assert dict(config.headers) == {"X-Team": "growth", "X-Note": "a b"}
    assert (config.flags_path, config.flags_timeout) == ("/flags/?v=2", 1.0)
    assert config.ca_bundle == str(ca)
    assert config.secret_key == "phs_project_secret"


def test_arguments_beat_environment_and_none_does_not():
    env = {"POSTHOG_API_KEY": KEY, "POSTHOG_HOST": "http://env.example", "POSTHOG_RETRIES": "9"}
    config = ClientConfig.from_env(env, host="http://arg.example", retries=None)
    assert config.host == "http://arg.example"
    assert config.retries == 9


def test_defaults_when_environment_is_empty():
    config = ClientConfig.from_env({"POSTHOG_API_KEY": KEY, "POSTHOG_TIMEOUT": "  "})
    assert config.host == "https://us.i.posthog.com"
    assert config.timeout == 5.0
    assert config.flags_path == "/decide/?v=4"


def test_missing_key_in_environment_says_which_variable():
    with pytest.raises(ConfigurationError, match="POSTHOG_API_KEY"):
        ClientConfig.from_env({})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("POSTHOG_TIMEOUT", "soon"),
        ("POSTHOG_TIMEOUT", "-3"),
        ("POSTHOG_RETRIES", "many"),
        ("POSTHOG_GZIP", "maybe"),
        ("POSTHOG_HEADERS", "no-equals-sign"),
        ("POSTHOG_HOST", "not a url"),
    ],
)
def test_bad_environment_value_names_the_variable(variable, value):
    with pytest.raises(ConfigurationError) as info:
        ClientConfig.from_env({"POSTHOG_API_KEY": KEY, variable: value})
    assert info.value.setting == variable
    assert KEY not in str(info.value)


def test_client_from_env(monkeypatch):
    monkeypatch.setenv("POSTHOG_API_KEY", KEY)
    monkeypatch.setenv("POSTHOG_HOST", "http://127.0.0.1:9")
    client = PostHogClient.from_env(timeout=1.0)
    assert client.host == "http://127.0.0.1:9"
    client.close()


def test_the_secret_key_comes_from_either_variable_and_is_never_shown():
    older = ClientConfig.from_env({"POSTHOG_API_KEY": KEY, "POSTHOG_PERSONAL_API_KEY": "phx_old"})
    assert older.secret_key == "phx_old"
    both = {"POSTHOG_API_KEY": KEY, "POSTHOG_PERSONAL_API_KEY": "phx_old"}
    assert (
        ClientConfig.from_env({**both, "POSTHOG_SECRET_KEY": " phs_new "}).secret_key == "phs_new"
    )
    assert ClientConfig.from_env({"POSTHOG_API_KEY": KEY}).secret_key is None
    config = ClientConfig(api_key=KEY, secret_key="phs_hidden_Secret")
    client = PostHogClient(KEY, secret_key="phs_hidden_Secret")
    assert "phs_hidden_Secret" not in repr(config) + repr(client)
    client.close()
    with pytest.raises(ConfigurationError, match="secret_key") as refused:
        ClientConfig(api_key=KEY, secret_key="  ")
    assert "phs" not in str(refused.value)
