"""The registry of publishers: entry points by Type, loaded lazily, failures isolated.

Discovery reads entry-point metadata only; a plugin module is imported the first time its
Type is used (``publisher list`` imports each to report its status). A plugin that fails
to import, fails pluggy's validation or declares no :class:`PublisherInfo` is kept as
``failed`` with the reason; two distributions claiming one Type make that Type fail with
a message naming both.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from typing import Any, Literal

import attrs
import pluggy

from . import hookspecs
from ._errors import PluginError, quoted
from ._models import PublisherInfo
from ._names import did_you_mean
from ._settings import DISABLED_VARIABLE

__all__ = ["ENTRY_POINT_GROUP", "Publisher", "PublisherStatus", "Registry"]

_log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "publisher_core.publishers"
"""The entry-point group publishers register in; the entry-point name is the Type."""


@attrs.frozen(kw_only=True)
class PublisherStatus:
    """One row of ``publisher list``: a Type, who provides it, and whether it works."""

    type: str
    distribution: str | None
    version: str | None
    status: Literal["ok", "failed", "disabled"]
    error: str | None = None
    summary: str = ""


class Publisher:
    """A loaded publisher plugin; calls reach it and any wrapper plugins, no other publisher."""

    def __init__(
        self, type_name: str, plugin: object, info: PublisherInfo, registry: Registry
    ) -> None:
        self.type = type_name
        self.plugin = plugin
        self.info = info
        self._registry = registry

    def __repr__(self) -> str:
        return f"<Publisher {self.type!r}>"

    def implements(self, hook_name: str) -> bool:
        """Whether the plugin itself implements ``hook_name`` (wrappers do not count)."""
        caller = getattr(self._registry.plugin_manager.hook, hook_name)
        return any(impl.plugin is self.plugin for impl in caller.get_hookimpls())

    def call(self, hook_name: str, **kwargs: Any) -> Any:
        """Call one hook on this publisher (and wrappers), with the given arguments."""
        if not self.implements(hook_name):
            raise PluginError(f"publisher {quoted(self.type)} does not implement {hook_name}")
        pm = self._registry.plugin_manager
        # Keep this publisher's implementation and every wrapper; drop every other plain
        # implementation, whether from another publisher or a host plugin, so nothing else
        # can answer a firstresult hook in its place.
        others = [
            impl.plugin
            for impl in getattr(pm.hook, hook_name).get_hookimpls()
            if impl.plugin is not self.plugin and not (impl.wrapper or impl.hookwrapper)
        ]
        return pm.subset_hook_caller(hook_name, others)(**kwargs)


@attrs.define
class _Entry:
    type: str
    distribution: str | None
    version: str | None
    load: Callable[[], object]
    status: Literal["ok", "failed", "disabled", "unloaded"] = "unloaded"
    error: str | None = None
    publisher: Publisher | None = None


def _identity(plugin: object) -> object:
    return plugin


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Registry:
    """Publishers by Type, discovered from entry points (or given directly, for tests).

    ``disabled`` defaults to the Types listed in ``PUBLISHER_DISABLED``. Host plugins
    passed in ``plugins`` (or added with :meth:`add_plugin`) may wrap every hook call.
    """

    def __init__(
        self,
        entry_points: Iterable[metadata.EntryPoint] | None = None,
        *,
        publishers: Mapping[str, object] | None = None,
        disabled: Iterable[str] | None = None,
        plugins: Iterable[object] = (),
    ) -> None:
        self.plugin_manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.plugin_manager.add_hookspecs(hookspecs)
        self._disabled_by = DISABLED_VARIABLE if disabled is None else "the host"
        if disabled is None:
            disabled = os.environ.get(DISABLED_VARIABLE, "").split(",")
        self._disabled = {d.strip().lower() for d in disabled if d.strip()}
        self._entries: dict[str, list[_Entry]] = {}
        if entry_points is None and publishers is None:
            entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
        self._add_entry_points(entry_points or ())
        for type_name, plugin in (publishers or {}).items():
            self._add(_Entry(type_name.lower(), None, None, functools.partial(_identity, plugin)))
        for plugin in plugins:
            self.add_plugin(plugin)

    @classmethod
    def from_path(cls, path: list[str], **kwargs: Any) -> Registry:
        """A registry of the distributions installed in the directories of ``path`` only.

        Only metadata is read here; the directories must be importable (on ``sys.path``)
        for the plugins to load.
        """
        eps = [
            ep
            for dist in metadata.distributions(path=path)
            for ep in dist.entry_points
            if ep.group == ENTRY_POINT_GROUP
        ]
        return cls(eps, **kwargs)

    def _add_entry_points(self, entry_points: Iterable[metadata.EntryPoint]) -> None:
        seen: set[tuple[str, str | None, str]] = set()
        for ep in entry_points:
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            version = dist.version if dist is not None else None
            key = (ep.name.lower(), dist_name, ep.value)
            if key in seen:  # the same distribution seen twice on sys.path
                continue
            seen.add(key)
            self._add(_Entry(ep.name.lower(), dist_name, version, ep.load))

    def _add(self, entry: _Entry) -> None:
        if entry.type in self._disabled:
            entry.status = "disabled"
            entry.error = f"disabled by {self._disabled_by}"
        self._entries.setdefault(entry.type, []).append(entry)

    def add_plugin(self, plugin: object, name: str | None = None) -> None:
        """Register a host plugin (for example a tracing wrapper) that sees every call."""
        self.plugin_manager.register(plugin, name=name)

    def types(self) -> list[str]:
        """Every Type known from metadata, sorted, without importing any plugin."""
        return sorted(self._entries)

    def loaded_plugins(self) -> list[object]:
        """The publisher plugins imported so far."""
        return [
            e.publisher.plugin
            for entries in self._entries.values()
            for e in entries
            if e.publisher is not None
        ]

    def get(self, type_name: str) -> Publisher:
        """The working publisher for ``type_name`` (case-insensitive), loading it if needed.

        Raises :class:`PluginError` saying why the Type cannot be used.
        """
        entries = self._entries.get(type_name.lower())
        if not entries:
            known = self.types()
            raise PluginError(
                f"unknown publisher type {quoted(type_name)}{did_you_mean(type_name, known)}; "
                f"installed: {', '.join(known) or 'none'}"
            )
        if len(entries) > 1:
            raise PluginError(self._duplicate_message(entries))
        entry = entries[0]
        self._load(entry)
        if entry.publisher is None:
            raise PluginError(f"publisher type {quoted(entry.type)} cannot be used: {entry.error}")
        return entry.publisher

    def statuses(self) -> list[PublisherStatus]:
        """One row per installed publisher, importing each to report its status."""
        rows: list[PublisherStatus] = []
        for type_name in self.types():
            entries = self._entries[type_name]
            duplicate = self._duplicate_message(entries) if len(entries) > 1 else None
            for entry in entries:
                if duplicate is None:
                    self._load(entry)
                info = entry.publisher.info if entry.publisher else None
                status: Literal["ok", "failed", "disabled"] = (
                    "disabled"
                    if entry.status == "disabled"
                    else ("ok" if entry.publisher and duplicate is None else "failed")
                )
                rows.append(
                    PublisherStatus(
                        type=type_name,
                        distribution=entry.distribution,
                        version=entry.version,
                        status=status,
                        error=duplicate if status == "failed" and duplicate else entry.error,
                        summary=info.summary if info else "",
                    )
                )
        return rows

    @staticmethod
    def _duplicate_message(entries: list[_Entry]) -> str:
        names = " and ".join(
            f"{e.distribution or '<unknown distribution>'} {e.version or ''}".strip()
            for e in entries
        )
        return (
            f"publisher type {quoted(entries[0].type)} is provided by more than one distribution: "
            f"{names}; uninstall one of them"
        )

    def _load(self, entry: _Entry) -> None:
        if entry.status != "unloaded":
            return
        try:
            plugin = entry.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit from a plugin must not end the host
            entry.status, entry.error = "failed", f"import failed: {_one_line(exc)}"
            _log.debug("publisher %r failed to import", entry.type, exc_info=True)
            return
        pm = self.plugin_manager
        name = f"publisher:{entry.type}"
        try:
            pm.register(plugin, name=name)
            pm.check_pending()
            info_impls = [i for i in pm.hook.publisher_info.get_hookimpls() if i.plugin is plugin]
            info = info_impls[0].function() if info_impls else None
            if not isinstance(info, PublisherInfo):
                raise TypeError(
                    f"publisher_info must return a PublisherInfo, got {type(info).__name__}"
                )
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            if pm.is_registered(plugin) and pm.get_name(plugin) == name:
                pm.unregister(plugin)
            entry.status, entry.error = "failed", f"invalid plugin: {_one_line(exc)}"
            return
        entry.status = "ok"
        entry.publisher = Publisher(entry.type, plugin, info, self)
        _log.debug("loaded publisher %r from %s %s", entry.type, entry.distribution, entry.version)
