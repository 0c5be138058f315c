"""The transmit-limited broadcast queue: limits, draw order, invalidation."""

from __future__ import annotations

from cluster.broadcast import TransmitLimitedQueue, retransmit_limit


def test_retransmit_limit_scales_with_log10() -> None:
    """The limit is mult * ceil(log10(n + 1)): 4 sends up to 9 nodes, 8 from 10 to 99."""
    assert retransmit_limit(4, 1) == 4
    assert retransmit_limit(4, 9) == 4
    assert retransmit_limit(4, 10) == 8
    assert retransmit_limit(3, 3) == 3
    assert retransmit_limit(4, 0) == 0


def test_message_is_dropped_after_the_limit() -> None:
    """A broadcast is handed out exactly limit times, then finished."""
    finished: list[str] = []
    queue = TransmitLimitedQueue(retransmit_mult=4, num_nodes=lambda: 3)
    queue.queue(b"m", name="a", on_finished=lambda: finished.append("a"))
    draws = [queue.get_broadcasts(2, 1400) for _ in range(6)]
    assert draws == [[b"m"]] * 4 + [[], []]
    assert finished == ["a"] and len(queue) == 0


def test_named_broadcast_invalidates_older_news_about_the_same_node() -> None:
    """Queuing news about a node replaces queued news about it; unnamed ones stay."""
    finished: list[str] = []
    queue = TransmitLimitedQueue(retransmit_mult=4, num_nodes=lambda: 3)
    queue.queue(b"alive-a", name="a", on_finished=lambda: finished.append("old"))
    queue.queue(b"user-1")
    queue.queue(b"user-2")
    queue.queue(b"dead-a", name="a")
    assert finished == ["old"]
    assert sorted(queue.get_broadcasts(0, 1400)) == [b"dead-a", b"user-1", b"user-2"]


def test_draw_order_fewest_transmits_then_largest_then_newest() -> None:
    """Fresh messages go first; within a tier the largest fitting message, newest on ties."""
    queue = TransmitLimitedQueue(retransmit_mult=4, num_nodes=lambda: 3)
    queue.queue(b"x" * 10)
    assert queue.get_broadcasts(0, 100) == [b"x" * 10]
    queue.queue(b"a" * 3)
    queue.queue(b"b" * 3)
    queue.queue(b"c" * 5)
    # the new tier (0 transmits) comes before the older message; within it longest, then newest
    assert queue.get_broadcasts(0, 100) == [b"c" * 5, b"b" * 3, b"a" * 3, b"x" * 10]


def test_messages_that_do_not_fit_are_skipped_not_blocking() -> None:
    """A message too big for the space left is skipped and smaller ones still go."""
    queue = TransmitLimitedQueue(retransmit_mult=1, num_nodes=lambda: 1)
    queue.queue(b"big" * 10)
    queue.queue(b"s")
    assert queue.get_broadcasts(2, 10) == [b"s"]
    assert queue.get_broadcasts(2, 40) == [b"big" * 10]
    assert queue.get_broadcasts(2, 1 + 2) == []


def test_prune_keeps_the_least_sent() -> None:
    """Pruning keeps the broadcasts with the fewest transmissions."""
    queue = TransmitLimitedQueue(retransmit_mult=4, num_nodes=lambda: 3)
    queue.queue(b"old")
    queue.get_broadcasts(0, 100)
    queue.queue(b"new")
    queue.prune(1)
    assert queue.get_broadcasts(0, 100) == [b"new"]
