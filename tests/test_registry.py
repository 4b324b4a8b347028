"""The generic registry, entry-point plugins (with a faked importlib.metadata) and the estimator registry."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from types import SimpleNamespace

import pytest

from tdabench.errors import TdabenchError, UnknownNameError
from tdabench.estimators import ExplicitInfluence, GradDot
from tdabench.registry import (Origin, Registry, estimator_names, estimators, get_estimator,
                               make_estimator)


class LazyWidget:
    pass


class PluginWidget:
    pass


class OtherPluginWidget:
    pass


class NotAnEstimator:
    pass


HERE = __name__  # this module's import name, for 'module:attr' targets


class FakeEntryPoint:
    def __init__(self, name: str, value: str, dist: str | None = "some-plugin", version: str = "1.2") -> None:
        self.name, self.value, self.group = name, value, "tdabench.widgets"
        self.dist = SimpleNamespace(name=dist, version=version) if dist else None
        self.loads = 0

    def load(self):
        self.loads += 1
        module, _, attr = self.value.partition(":")
        return getattr(importlib.import_module(module), attr)


@pytest.fixture
def fake_entry_points(monkeypatch):
    """Install a list of fake entry points for group 'tdabench.widgets'; returns the list to fill."""
    installed: list[FakeEntryPoint] = []

    def entry_points(group=None):
        return [ep for ep in installed if ep.group == group]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return installed


def test_register_decorator_sets_name_and_origin():
    reg: Registry[type] = Registry("widget")

    @reg.register("my-widget")
    class Widget:
        pass

    assert reg.get("my-widget") is Widget and Widget.name == "my-widget"
    assert reg.names() == ["my-widget"] and "my-widget" in reg
    assert reg.origin("my-widget") == Origin("built-in", f"{__name__}:{Widget.__qualname__}")
    assert reg.origin("my-widget").to_dict()["distribution"] is None


def test_duplicate_registration_names_both_origins_and_lists_names():
    reg: Registry[type] = Registry("widget")
    reg.register("a")(type("A", (), {}))
    reg.register_lazy("b", f"{HERE}:PluginWidget")
    with pytest.raises(TdabenchError, match=r"'a' is registered twice.*:A.*and.*:A2.*widgets: a, b"):
        reg.register("a")(type("A2", (), {}))


def test_unknown_name_lists_valid_names():
    reg: Registry[type] = Registry("widget")
    reg.register("beta")(type("B", (), {}))
    reg.register("alpha")(type("A", (), {}))
    with pytest.raises(UnknownNameError, match="unknown widget 'gamma'; valid widgets: alpha, beta") as info:
        reg.get("gamma")
    assert info.value.valid == ["alpha", "beta"]
    with pytest.raises(UnknownNameError):
        reg.origin("gamma")


def test_lazy_placeholder_is_imported_on_first_get():
    reg: Registry[type] = Registry("widget")
    reg.register_lazy("lazy", f"{HERE}:LazyWidget")
    reg.register_lazy("broken", "no_such_module_xyz:Thing")
    assert reg.names() == ["broken", "lazy"] and not hasattr(LazyWidget, "name")  # nothing loaded yet
    assert reg.get("lazy") is LazyWidget and LazyWidget.name == "lazy"
    with pytest.raises(TdabenchError, match="cannot load widget 'broken' from 'no_such_module_xyz:Thing'.*"
                                            "ModuleNotFoundError"):
        reg.get("broken")
    with pytest.raises(TdabenchError, match="module:attr"):
        reg.register_lazy("bad", "PluginWidget")


def test_builtins_module_is_imported_on_first_use():
    reg: Registry[type] = Registry("widget", builtins="no_such_builtins_module_xyz")
    with pytest.raises(ModuleNotFoundError):
        reg.names()


def test_plugins_discovered_lazily_and_loaded_on_get(fake_entry_points):
    reg: Registry[type] = Registry("widget", "tdabench.widgets")
    reg.register("builtin-one")(type("One", (), {}))
    ep = FakeEntryPoint("plug", f"{HERE}:PluginWidget", "widget-plugin", "2.0")
    fake_entry_points.append(ep)
    assert reg.names() == ["builtin-one", "plug"] and ep.loads == 0
    assert reg.origin("plug") == Origin("plugin", f"{HERE}:PluginWidget", "widget-plugin", "2.0")
    assert reg.get("plug") is PluginWidget and reg.get("plug") is PluginWidget
    assert ep.loads == 1
    fake_entry_points.append(FakeEntryPoint("later", f"{HERE}:OtherPluginWidget"))
    assert "later" not in reg.names()  # discovery is cached …
    reg.refresh()
    assert "later" in reg.names()  # … until refresh()


def test_plugin_colliding_with_builtin_is_an_error(fake_entry_points):
    reg: Registry[type] = Registry("widget", "tdabench.widgets")
    reg.register("dup")(type("Dup", (), {}))
    fake_entry_points.append(FakeEntryPoint("dup", f"{HERE}:PluginWidget", "evil-plugin", "0.1"))
    with pytest.raises(TdabenchError, match=r"'dup' of plugin .*:PluginWidget \(distribution evil-plugin 0.1\)"
                                            r" collides with the built-in .*:Dup.*widgets: dup"):
        reg.names()


def test_two_plugins_with_one_name_is_an_error(fake_entry_points):
    reg: Registry[type] = Registry("widget", "tdabench.widgets")
    fake_entry_points += [FakeEntryPoint("same", f"{HERE}:PluginWidget", "pkg-a", "1"),
                          FakeEntryPoint("same", f"{HERE}:OtherPluginWidget", "pkg-b", "2"),
                          FakeEntryPoint("other", f"{HERE}:OtherPluginWidget", "pkg-b", "2")]
    with pytest.raises(TdabenchError, match=r"'same' is provided by more than one plugin.*pkg-a 1.*pkg-b 2"
                                            r".*widgets: other, same"):
        reg.get("other")


def test_same_plugin_seen_twice_is_not_a_collision(fake_entry_points):
    reg: Registry[type] = Registry("widget", "tdabench.widgets")
    fake_entry_points += [FakeEntryPoint("widget", f"{HERE}:PluginWidget"),
                          FakeEntryPoint("widget", f"{HERE}:PluginWidget")]
    assert reg.get("widget") is PluginWidget


def test_plugin_that_fails_to_import_names_the_entry_point(fake_entry_points):
    reg: Registry[type] = Registry("widget", "tdabench.widgets")
    fake_entry_points.append(FakeEntryPoint("ghost", "no_such_plugin_module_xyz:Ghost", "ghost-dist", "9"))
    assert reg.names() == ["ghost"]
    with pytest.raises(TdabenchError, match=r"entry point 'ghost = no_such_plugin_module_xyz:Ghost' of group "
                                            r"'tdabench.widgets' \(distribution ghost-dist 9\).*ModuleNotFoundError"):
        reg.get("ghost")


def test_plugin_module_that_registers_itself_is_not_a_duplicate(fake_entry_points):
    reg: Registry[type] = Registry("widget", "tdabench.widgets")
    ep = FakeEntryPoint("self-reg", "x:Y")
    ep.load = lambda: reg.register("self-reg")(type("SelfRegistering", (), {}))  # type: ignore[method-assign]
    fake_entry_points.append(ep)
    obj = reg.get("self-reg")
    assert obj.name == "self-reg" and reg.origin("self-reg").kind == "plugin"


def test_builtin_estimators_are_registered():
    assert {"grad-dot", "grad-cos", "if-explicit"} <= set(estimator_names())
    assert get_estimator("grad-dot") is GradDot and GradDot.name == "grad-dot"
    assert estimators.origin("if-explicit").to_dict() == {
        "kind": "built-in", "target": "tdabench.estimators.influence:ExplicitInfluence",
        "distribution": None, "version": None}


def test_registry_imported_first_still_has_builtins():
    """A fresh interpreter that imports only tdabench.registry sees the built-ins (no import cycle)."""
    code = "from tdabench.registry import estimator_names as n; print(','.join(n()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert {"grad-dot", "grad-cos", "if-explicit"} <= set(out.strip().split(","))


def test_make_estimator_and_bad_parameter():
    est = make_estimator("if-explicit", damping=0.5, curvature="gauss-newton")
    assert isinstance(est, ExplicitInfluence) and est.damping == 0.5 and est.curvature == "gauss-newton"
    with pytest.raises(TdabenchError, match="estimator 'if-explicit' has no parameter 'dampng'; valid parameters: "
                                            "batch_size, curvature, damping, damping_relative, max_params"):
        make_estimator("if-explicit", dampng=0.5)
    with pytest.raises(UnknownNameError, match="valid estimators: .*grad-dot"):
        make_estimator("no-such-estimator")


def test_plugin_module_imported_before_discovery_is_the_same_entry(fake_entry_points):
    reg: Registry[type] = Registry("widget", "tdabench.widgets")
    reg.register("early")(PluginWidget)  # the plugin's module registered itself on import
    fake_entry_points.append(FakeEntryPoint("early", f"{HERE}:PluginWidget", "early-dist", "3"))
    assert reg.get("early") is PluginWidget
    assert reg.origin("early") == Origin("plugin", f"{HERE}:PluginWidget", "early-dist", "3")


ESTIMATOR_BASE = "tdabench.estimators.base:Estimator"


def test_plugin_that_is_not_an_estimator_subclass_is_refused(fake_entry_points):
    reg: Registry[type] = Registry("estimator", "tdabench.widgets", base=ESTIMATOR_BASE)
    fake_entry_points.append(FakeEntryPoint("plain", f"{HERE}:NotAnEstimator", "plain-dist", "0.2"))
    assert reg.names() == ["plain"]  # listed (discovery imports nothing) …
    for _ in range(2):  # … but refused on every look-up
        with pytest.raises(TdabenchError, match=rf"estimator 'plain' from entry point 'plain = {HERE}:NotAnEstimator' "
                                                r"of group 'tdabench.widgets' \(distribution plain-dist 0.2\) "
                                                r"is not a tdabench Estimator subclass"):
            reg.get("plain")
    assert not hasattr(NotAnEstimator, "name")


def test_make_estimator_refuses_a_plugin_that_is_not_an_estimator(monkeypatch):
    ep = FakeEntryPoint("not-an-estimator", f"{HERE}:NotAnEstimator", "bad-estimator-dist", "1.0")
    ep.group = "tdabench.estimators"
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: [ep] if group == ep.group else [])
    estimators.refresh()
    try:
        assert "not-an-estimator" in estimator_names()
        with pytest.raises(TdabenchError, match=r"estimator 'not-an-estimator' from entry point .*distribution "
                                                r"bad-estimator-dist 1.0.* is not a tdabench Estimator subclass"):
            make_estimator("not-an-estimator")
    finally:
        monkeypatch.undo()
        estimators.refresh()
    assert "not-an-estimator" not in estimator_names()


def test_lazy_or_decorated_non_estimator_is_refused():
    reg: Registry[type] = Registry("estimator", base=ESTIMATOR_BASE)
    reg.register_lazy("lazy-plain", f"{HERE}:LazyWidget")
    with pytest.raises(TdabenchError, match=rf"estimator 'lazy-plain' from '{HERE}:LazyWidget' is not a tdabench "
                                            r"Estimator subclass"):
        reg.get("lazy-plain")
    with pytest.raises(TdabenchError, match="'decorated' from .*:Plain' is not a tdabench Estimator subclass"):
        reg.register("decorated")(type("Plain", (), {}))
    assert reg.names() == ["lazy-plain"]
    reg.register("fine")(type("Fine", (GradDot,), {}))
    assert reg.get("fine").name == "fine"


def test_unknown_name_suggests_close_matches():
    reg: Registry[type] = Registry("widget")
    for name in ("alpha", "beta", "alphabet"):
        reg.register(name)(type(name, (), {}))
    with pytest.raises(UnknownNameError, match=r"^unknown widget 'alpah'; valid widgets: alpha, alphabet, beta; "
                                               r"did you mean 'alpha' or 'alphabet'\?$") as info:
        reg.get("alpah")
    assert info.value.suggestions == ["alpha", "alphabet"]
    with pytest.raises(UnknownNameError, match=r"^unknown widget 'zzz'; valid widgets: alpha, alphabet, beta$"):
        reg.get("zzz")
    with pytest.raises(UnknownNameError, match=r"valid estimators: .*grad-dot.*; did you mean 'grad-dot'"):
        make_estimator("grad-dto")
    with pytest.raises(UnknownNameError, match=r"did you mean 'grad-dot'"):
        make_estimator("Grad-Dot")


def test_adapter_is_a_property_of_the_class():
    libraries = {name: get_estimator(name).adapter_of for name in estimator_names()}
    assert {n: lib for n, lib in libraries.items() if lib is not None} == {
        "tracin-captum": "captum", "if-dattri": "dattri", "trak-traker": "traker", "ekfac-kronfluence": "kronfluence"}
    assert GradDot.adapter_of is None


def test_adapter_classes_load_without_their_libraries():
    """The adapter modules import their library on first fit: `adapter_of` (for `tdabench list` and the
    default estimators) is readable without it, and fitting names the missing package."""
    code = """
import sys
for m in ("captum", "dattri", "trak", "kronfluence"):
    sys.modules[m] = None  # import fails as if not installed
from tdabench.registry import estimators, estimator_names
print({n: estimators.get(n).adapter_of for n in estimator_names()}["if-dattri"])
from tdabench.errors import TdabenchError
from tdabench.testing import planted_duplicate_context
for name in ("tracin-captum", "if-dattri", "trak-traker", "ekfac-kronfluence"):
    try:
        estimators.get(name)().fit(planted_duplicate_context())
    except TdabenchError as err:
        print(err)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "dattri" and len(lines) == 5, proc.stdout
    for line, package in zip(lines[1:], ("captum", "dattri", "traker", "kronfluence")):
        assert f"needs the package {package}" in line, line
