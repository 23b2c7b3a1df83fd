"""newsmon's key partitioner picks the partition aiokafka's (and so Java's) default does."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st
from newsmon.shared.kafka import key_partition, murmur2


@given(st.binary(max_size=200))
def test_murmur2_is_kafkas(key: bytes) -> None:
    assert murmur2(key) == aiokafka_murmur2(key)


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=64))
def test_a_keyed_record_goes_where_the_default_partitioner_sends_it(
    key: bytes, partitions: int
) -> None:
    every = list(range(partitions))
    assert key_partition(key, every, every) == DefaultPartitioner()(key, every, every)


# Kafka's own vectors: apache/kafka clients/src/test/java/org/apache/kafka/common/utils/
# UtilsTest.java, testMurmur2 (signed 32-bit values as Java prints them).
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_murmur2_gives_the_java_clients_values() -> None:
    for key, signed in JAVA_MURMUR2.items():
        assert murmur2(key) == signed & 0xFFFFFFFF, key


def test_an_unkeyed_record_goes_to_a_partition_with_a_leader() -> None:
    assert key_partition(None, [0, 1, 2], [1]) == 1
