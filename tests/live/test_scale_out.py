"""Scale-out: the live flow as a Bytewax cluster of two processes (``-i``/``-a``, one
worker each, a shared recovery folder) over a four-partition topic writes the alert log
one worker writes over the same topic, and both are a replay's up to the live watermark.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from bytewax.recovery import init_db_dir

from revleak.connectors import kafka
from revleak.loadtest import services, soak

pytestmark = [pytest.mark.services, pytest.mark.slow]

PARTITIONS = 4
PROCESSES = 2
# A partition silent this long stops holding the watermark back, and what it sends
# afterwards behind the watermark is late. Every partition is full before the flows
# start, so only a consumer slower than this to fetch its first messages could go idle:
# the margin is for a busy 2-core machine starting three flows.
IDLE_TIMEOUT_S = 3.0


def test_a_two_process_cluster_over_four_partitions_logs_what_one_worker_logs(
    kafka_brokers: str, story: list[bytes], tmp_path: Path
) -> None:
    cluster_topics = soak.Topics.fresh("cluster")
    single_topics = replace(soak.Topics.fresh("single"), changes=cluster_topics.changes)
    cluster_topics.create(kafka_brokers, PARTITIONS)
    single_topics.create(kafka_brokers, PARTITIONS)
    assert kafka.topic_partitions(kafka_brokers, cluster_topics.changes) == PARTITIONS
    soak.feed(kafka_brokers, [cluster_topics.changes], story, partitions=PARTITIONS)
    assert len({soak.record_partition(line, PARTITIONS) for line in story}) == PARTITIONS

    # Both processes share one recovery folder, initialised before either starts (each
    # would otherwise find it empty and create its partitions at the same time).
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    init_db_dir(recovery, PROCESSES)
    addresses = ";".join(f"127.0.0.1:{services.free_port()}" for _ in range(PROCESSES))
    cluster = [
        soak.LiveFlow(
            f"cluster-{process}",
            [
                *soak.live_args(
                    kafka_brokers,
                    cluster_topics,
                    recovery_dir=recovery,
                    idle_timeout_s=IDLE_TIMEOUT_S,
                ),
                *("--workers", "1", "-i", str(process), "-a", addresses),
            ],
            tmp_path / "cluster",
        )
        for process in range(PROCESSES)
    ]
    single = soak.LiveFlow(
        "single",
        [
            *soak.live_args(kafka_brokers, single_topics, idle_timeout_s=IDLE_TIMEOUT_S),
            *("--workers", "1"),
        ],
        tmp_path / "single",
    )
    flows = [*cluster, single]
    try:
        for flow in flows:
            flow.start()
        expected = soak.expected_log(story, tmp_path / "replay")
        logs = soak.wait_for_logs(
            kafka_brokers,
            {
                "cluster": (cluster_topics.alerts, cluster),
                "single": (single_topics.alerts, [single]),
            },
            len(expected),
        )
    finally:
        codes = soak.stop_all(flows)
    for flow in flows:
        assert flow.crashes == [], f"{flow.name} ended by itself:\n{flow.log_tail()}"

    assert len(expected) > 50
    assert logs["single"] == expected, soak.log_difference(expected, logs["single"])
    assert logs["cluster"] == logs["single"], soak.log_difference(logs["single"], logs["cluster"])
    # A dead letter here would be a partition judged idle while starting (see above).
    assert soak.dead_letters(kafka_brokers, cluster_topics.dlq) == frozenset()
    assert soak.dead_letters(kafka_brokers, single_topics.dlq) == frozenset()
    assert codes == dict.fromkeys(codes, 0), "\n".join(flow.log_tail() for flow in flows)
