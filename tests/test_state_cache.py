"""The KV state cache's storage: RAM and disk tiers, budgets, and files it must not trust."""

from __future__ import annotations

import os

from edgetui.engine.state_cache import CacheKey, StateCache, cache_dir, invalidate

KEY = CacheKey(model="a" * 64, build="llama.cpp test build", n_ctx=2048, n_batch=512)


def test_a_state_put_in_one_process_is_read_by_the_next(tmp_path):
    digest = KEY.digest([1, 2, 3])
    StateCache(tmp_path, KEY).put(digest, b"kv-bytes" * 100)
    fresh = StateCache(tmp_path, KEY)  # a new process: nothing in RAM
    assert fresh.get(digest) == (b"kv-bytes" * 100, "disk")
    assert fresh.get(digest) == (b"kv-bytes" * 100, "ram")


def test_the_key_covers_model_build_context_and_tokens():
    other = CacheKey(model="b" * 64, build=KEY.build, n_ctx=2048, n_batch=512)
    assert KEY.digest([1, 2, 3]) != KEY.digest([1, 2, 4])
    assert KEY.digest([1, 2, 3]) != other.digest([1, 2, 3])
    assert KEY.digest([1, 2, 3]) != CacheKey(KEY.model, "another build", 2048, 512).digest([1, 2, 3])


def test_a_truncated_file_is_a_miss_and_is_deleted(tmp_path):
    digest = KEY.digest([5, 6])
    StateCache(tmp_path, KEY).put(digest, os.urandom(4096))
    path = next(tmp_path.glob("*.kv"))
    path.write_bytes(path.read_bytes()[:-100])
    cache = StateCache(tmp_path, KEY)
    assert cache.get(digest) == (None, "miss")
    assert not path.exists()
    assert "truncated or corrupt" in cache.problems[0]


def test_a_flipped_byte_is_a_miss(tmp_path):
    digest = KEY.digest([7])
    StateCache(tmp_path, KEY).put(digest, bytes(range(256)) * 8)
    path = next(tmp_path.glob("*.kv"))
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert StateCache(tmp_path, KEY).get(digest) == (None, "miss")


def test_a_file_made_for_another_model_is_a_miss(tmp_path):
    digest = KEY.digest([8])
    StateCache(tmp_path, KEY).put(digest, b"x" * 64)
    other = CacheKey(model="c" * 64, build=KEY.build, n_ctx=2048, n_batch=512)
    cache = StateCache(tmp_path, other)
    assert cache.get(digest) == (None, "miss")
    assert "another model" in cache.problems[0]


def test_garbage_and_half_written_files_never_count(tmp_path):
    digest = KEY.digest([9])
    (tmp_path / f"{digest}.kv").write_bytes(b"not a state")
    (tmp_path / f".{digest}.kv.123.tmp").write_bytes(b"EDGETUI-KV1\n partial")  # a killed writer
    cache = StateCache(tmp_path, KEY)
    assert cache.get(digest) == (None, "miss")
    cache.put(digest, b"good")
    assert StateCache(tmp_path, KEY).get(digest) == (b"good", "disk")


def test_budgets_evict_the_least_recently_used(tmp_path):
    cache = StateCache(tmp_path, KEY, ram_budget=2500, disk_budget=2600)
    digests = [KEY.digest([i]) for i in range(4)]
    for d in digests:
        cache.put(d, b"z" * 1000)
    assert cache.ram_bytes <= 2500 and cache.disk_bytes <= 2600
    assert cache.get(digests[0]) == (None, "miss")  # the oldest went first, from both tiers
    assert cache.get(digests[3])[1] == "ram"


def test_invalidate_clears_the_data_dir(tmp_path):
    cache = StateCache(cache_dir(tmp_path), KEY)
    cache.put(KEY.digest([1]), b"s" * 10)
    assert invalidate(tmp_path) == 1
    assert StateCache(cache_dir(tmp_path), KEY).get(KEY.digest([1])) == (None, "miss")


def test_an_unwritable_directory_costs_a_recompute_not_an_error(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache dir should be")
    cache = StateCache(blocked / "kv", KEY)
    cache.put(KEY.digest([1]), b"s")
    assert cache.get(KEY.digest([1])) == (b"s", "ram")
    assert "not written" in cache.problems[0]


def test_a_background_write_is_on_disk_after_flush(tmp_path):
    cache = StateCache(tmp_path, KEY)
    digests = [KEY.digest([i, i]) for i in range(3)]
    for d in digests:
        cache.put(d, d.encode() * 100, background=True)
    assert cache.get(digests[0])[1] == "ram"  # usable at once, before the file exists
    cache.flush()
    fresh = StateCache(tmp_path, KEY)
    assert [fresh.get(d) for d in digests] == [(d.encode() * 100, "disk") for d in digests]
