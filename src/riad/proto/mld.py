"""Multicast listener discovery for a host (MLDv2, RFC 3810), sans-IO.

``MulticastListener`` holds the groups the IPv6 layer listens to (all-nodes
and a solicited-node group per address) and tells the routers of the link
about them, so that a switch that snoops MLD keeps delivering them:

- joining or leaving a group is a state change: reported at once, then
  ``robustness - 1`` times more at random moments within
  ``unsolicited_report_interval`` (RFC 3810 6.1), changes pending at the
  same time going in one report;
- a query (RFC 3810 5.1) is answered after a random delay within its
  maximum response delay: a general query with every group, a
  group-specific one with that group (6.2); a query must come from a
  link-local address with hop limit 1, or it is counted and dropped.

The link-scope all-nodes group (ff02::1) and interface-local groups are
never reported (RFC 3810 6). Reports are ``Mldv2Report`` values; the IPv6
layer sends them (``mld_report_packet``: hop limit 1, router alert, to
ff02::16) from its link-local address, or from ``::`` before it has one.
MLDv1 queriers are answered with MLDv2 reports (no version 1 compatibility
mode). Drops are counted under ``mld.*``.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from ipaddress import IPv6Address

from riad.proto.jitter import Entropy, uniform_duration
from riad.time import Duration, Instant
from riad.wire.common import MacAddress
from riad.wire.ipv6 import ALL_NODES, multicast_mac
from riad.wire.ndp import MldRecordType, Mldv2Report, MulticastRecord

__all__ = ["MldConfig", "MulticastListener"]

_QUERY = struct.Struct("!BBHHH16s")
_RECORDS_PER_REPORT = 50  # 50 records of 20 bytes stay well within 1,280 bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class MldConfig:
    """MLDv2 timers (defaults: RFC 3810 9)."""

    robustness: int = 2
    unsolicited_report_interval: Duration = field(default_factory=lambda: Duration.from_secs(1))


def _reported(group: IPv6Address) -> bool:
    """Whether joining ``group`` is reported: not all-nodes, nor of interface-local scope."""
    return group != ALL_NODES and group.packed[1] & 0x0F > 1


class MulticastListener:
    """The multicast groups of one interface and their MLDv2 reports."""

    def __init__(
        self, entropy: Entropy, config: MldConfig | None = None, drops: Counter[str] | None = None
    ) -> None:
        self.config = config if config is not None else MldConfig()
        self.drops: Counter[str] = drops if drops is not None else Counter()
        self._entropy = entropy
        self._groups: dict[IPv6Address, int] = {}
        self.macs: set[MacAddress] = set()
        """The Ethernet addresses of the groups joined: frames to them are ours."""
        self._changes: dict[IPv6Address, tuple[int, int]] = {}
        """Pending state changes: record type and reports still to carry it."""
        self._change_due: Instant | None = None
        self._general_due: Instant | None = None
        self._group_due: dict[IPv6Address, Instant] = {}
        self.reports_sent = 0

    def __contains__(self, group: object) -> bool:
        return group in self._groups

    @property
    def groups(self) -> tuple[IPv6Address, ...]:
        return tuple(self._groups)

    def join(self, group: IPv6Address, now: Instant) -> None:
        """Listen to ``group`` (joins are counted: ``leave`` as often to stop)."""
        count = self._groups.get(group, 0)
        self._groups[group] = count + 1
        if count:
            return
        self.macs.add(multicast_mac(group))
        if _reported(group):
            self._change(group, MldRecordType.CHANGE_TO_EXCLUDE, now)

    def leave(self, group: IPv6Address, now: Instant) -> None:
        """Stop listening to ``group`` once every join is left."""
        count = self._groups.get(group, 0)
        if count > 1:
            self._groups[group] = count - 1
            return
        if not count:
            return
        del self._groups[group]
        self.macs.discard(multicast_mac(group))
        self._group_due.pop(group, None)
        if _reported(group):
            self._change(group, MldRecordType.CHANGE_TO_INCLUDE, now)

    def _change(self, group: IPv6Address, record_type: int, now: Instant) -> None:
        self._changes[group] = (record_type, max(self.config.robustness, 1))
        self._change_due = now  # reported at once (RFC 3810 6.1)

    def handle_query(
        self, src: IPv6Address, hop_limit: int, message: memoryview, now: Instant
    ) -> None:
        """A multicast listener query (the whole ICMPv6 message, checksum verified)."""
        if len(message) < 24:
            self.drops["mld.truncated.query"] += 1
            return
        if hop_limit != 1 or not src.is_link_local:
            self.drops["mld.sanity.query_source"] += 1  # RFC 3810 5.1.14: not from a router here
            return
        _, _, _, code, _, raw_group = _QUERY.unpack_from(message, 0)
        delay = Duration.from_millis(_max_response_ms(code, len(message) >= 28))
        due = now + uniform_duration(self._entropy, Duration(0), delay)
        group = IPv6Address(raw_group)
        if group.is_unspecified:
            if self._general_due is None or due < self._general_due:
                self._general_due = due
        elif group in self._groups and _reported(group):
            pending = self._group_due.get(group)
            if pending is None or due < pending:
                self._group_due[group] = due
        else:
            self.drops["mld.query_not_ours"] += 1

    def poll_transmit(self, now: Instant) -> list[Mldv2Report]:
        """Reports due now."""
        if not self._group_due and (
            (self._change_due is None or now < self._change_due)
            and (self._general_due is None or now < self._general_due)
        ):
            return []  # nothing due: the common case, asked at every flush
        records: list[MulticastRecord] = []
        if self._change_due is not None and self._change_due <= now:
            for group, (record_type, left) in list(self._changes.items()):
                records.append(MulticastRecord(record_type=record_type, group=group))
                if left > 1:
                    self._changes[group] = (record_type, left - 1)
                else:
                    del self._changes[group]
            self._change_due = (
                now
                + uniform_duration(
                    self._entropy, Duration(0), self.config.unsolicited_report_interval
                )
                if self._changes
                else None
            )
        current: list[IPv6Address] = []
        if self._general_due is not None and self._general_due <= now:
            self._general_due = None
            self._group_due.clear()
            current = [g for g in self._groups if _reported(g)]
        else:
            for group, due in list(self._group_due.items()):
                if due <= now:
                    del self._group_due[group]
                    current.append(group)
        records += [
            MulticastRecord(record_type=MldRecordType.MODE_IS_EXCLUDE, group=g) for g in current
        ]
        reports = [
            Mldv2Report(records=tuple(records[i : i + _RECORDS_PER_REPORT]))
            for i in range(0, len(records), _RECORDS_PER_REPORT)
        ]
        self.reports_sent += len(reports)
        return reports

    def poll_at(self) -> Instant | None:
        """When the next report is due."""
        best = self._change_due
        for due in (self._general_due, *self._group_due.values()):
            if due is not None and (best is None or due < best):
                best = due
        return best

    def on_timeout(self, now: Instant) -> None:
        """Nothing to do beyond ``poll_transmit``: reports due are sent from there."""
        return None


def _max_response_ms(code: int, version2: bool) -> int:
    """The maximum response delay of a query, in milliseconds (RFC 3810 5.1.3; MLDv1:
    the field itself, RFC 2710 3.4)."""
    if not version2 or code < 0x8000:
        return code
    exponent = (code >> 12) & 0x7
    mantissa = code & 0x0FFF
    return (mantissa | 0x1000) << (exponent + 3)
