"""Live input: an idle partition stops holding the watermark back (docs/semantics.md §1)."""

from __future__ import annotations

from harness import decode_batches, default_catalog, run_pipeline

from revleak.crm.pipeline import DecodedBatch, FlowConfig

CREATE = (
    b'{"event_id":"%s","ts":"%s","object":"lead","op":"create","record_id":"%s",'
    b'"fields":{"owner":"ana","region":"NA","created_at":"%s"}}'
)


def create(event_id: str, ts: str, record: str) -> bytes:
    return CREATE % (event_id.encode(), ts.encode(), record.encode(), ts.encode())


def without_end(batches: list[DecodedBatch]) -> list[DecodedBatch]:
    return [batch for batch in batches if not batch.end]


def test_deadlines_fire_while_a_quiet_partition_is_idle_and_its_late_return_is_dead_lettered() -> (
    None
):
    config = FlowConfig(catalog=default_catalog(), partitions=2, shards=2)
    busy = without_end(
        decode_batches(
            [
                create("a", "2026-03-02T10:00:00Z", "L1"),
                create("b", "2026-03-02T11:00:00Z", "L2"),
            ],
            partition=0,
            batch_size=1,
        )
    )
    quiet = [
        *without_end(decode_batches([create("q", "2026-03-02T09:59:00Z", "Q1")], partition=1)),
        DecodedBatch(1, (), idle=True),
        # Back after the watermark moved on to 10:59: a change at 10:05 is late.
        *without_end(decode_batches([create("r", "2026-03-02T10:05:00Z", "Q2")], partition=1)),
    ]
    held = run_pipeline(config, [busy, quiet[:1]])
    assert not any(a.slo == "lead_response" for a in held.alerts), "p1 holds the watermark"

    outputs = run_pipeline(config, [busy, quiet])
    fired = [a for a in outputs.alerts if a.slo == "lead_response" and a.firing]
    assert fired, "L1's 10:30 deadline fired while p1 was idle"
    [late] = outputs.dead_letters
    assert (late.reason, late.partition, late.line, late.offset) == ("late", 1, None, 1)
    assert "idle" in late.detail
    assert late.original is None  # the sink copies the bytes from the source topic
