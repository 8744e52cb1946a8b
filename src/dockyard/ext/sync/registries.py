"""The upstream registries a config names: their clients, rules and settings.

``extensions.sync.registries`` in zot's keys, plus distribution's ``proxy`` section,
which is read as one more on-demand registry covering every name.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.config import Config
from dockyard.config.sync import SyncContent, SyncRegistry
from dockyard.ext.sync.credentials import credentials_for, load_credentials
from dockyard.ext.sync.rules import Rule, upstream_name_at
from dockyard.ext.sync.upstream import Upstream, client_tls


@dataclass
class Registry:
    """One ``registries`` entry: its settings, one client per URL, its content rules."""

    settings: SyncRegistry
    upstreams: list[Upstream]
    rules: list[Rule]

    def sources_for(self, local: str) -> list[tuple[Upstream, str]]:
        """Each URL with the name ``local`` has there, when a rule covers it; else []."""
        for rule in self.rules:
            sources = []
            for upstream in self.upstreams:
                name = upstream_name_at(rule, upstream.host, local)
                if name is not None:
                    sources.append((upstream, name))
            if sources:
                return sources
        return []


def build_registries(config: Config) -> list[Registry]:
    """Clients for every configured upstream; [] when mirroring is off."""
    sync = config.extensions.sync
    entries: list[SyncRegistry] = []
    table = {}
    if config.extensions.sync_on and sync is not None:
        entries += sync.registries
        table = load_credentials(sync.credentials_file)
    if config.proxy is not None:
        proxy = SyncRegistry.model_validate({"urls": [config.proxy.remoteurl], "onDemand": True})
        if config.proxy.username is not None:
            table = {
                **table,
                config.proxy.remoteurl: (config.proxy.username, config.proxy.password or ""),
            }
        entries.append(proxy)
    registries = []
    for entry in entries:
        tls = client_tls(entry.tls_verify, entry.cert_dir)
        upstreams = [Upstream(url, credentials_for(url, table), tls) for url in entry.urls]
        content = entry.content or [SyncContent(prefix="**")]
        registries.append(Registry(entry, upstreams, [Rule(c) for c in content]))
    return registries
