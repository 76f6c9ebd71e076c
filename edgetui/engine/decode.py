"""The decode loop both runtimes share: sampled token ids in, ('tok', text, id, t) events then ('done', stats) out.

A runtime brings what differs: the ids it samples (a generator, advanced one token at a time, so no model
step runs after the loop stops) and the bytes each id stands for. The loop does the rest the same way for
every runtime: end-of-generation ids, incremental UTF-8, stop strings (text that could still grow into one
is held back until it cannot), cancellation within one token, the token budget, and the stats.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Generator, Iterator

from edgetui.engine.base import GenParams, PromptTooLong


def check_fits(n_prompt: int, p: GenParams, n_ctx: int) -> None:
    """Refuse a prompt that, with its output budget, does not fit in the context window."""
    if n_prompt + p.max_tokens > n_ctx:
        raise PromptTooLong(
            f"prompt is {n_prompt} tokens; with max_tokens {p.max_tokens} it exceeds the "
            f"{n_ctx}-token context: shorten the input or raise n_ctx in the bundle"
        )


def decode(ids: Generator[int, None, None], token_bytes: Callable[[int], bytes], eog: set[int], p: GenParams,
           cancelled: Callable[[], bool], start: float, prompt_tokens: int, reused: int) -> Iterator[tuple]:
    """Turn sampled ids into text events; `start` is time.monotonic() at request start.

    Stats: `prompt_ms` runs from `start` to the first sampled id, `decode_ms` from the first to the last,
    `token_times` holds each output token's time; `finish` is stop | length | cancelled.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    held, text_all = "", ""
    n_out, t_first, t_last, finish = 0, 0.0, 0.0, "length"
    times: list[float] = []
    for tok in ids:
        now = time.monotonic()
        if n_out == 0:
            t_first = now
        t_last = now
        if tok in eog:
            finish = "stop"
            break
        n_out += 1
        times.append(now)
        piece = decoder.decode(token_bytes(tok))
        held += piece
        text_all += piece
        stop_at = find_stop(text_all, p.stop)
        if stop_at is not None:
            emit = held[: len(held) - (len(text_all) - stop_at)]
            if emit:
                yield ("tok", emit, tok, now)
            finish = "stop"
            break
        keep = stop_prefix_len(text_all, p.stop)
        emit, held = (held[: len(held) - keep], held[len(held) - keep :]) if keep else (held, "")
        if emit:
            yield ("tok", emit, tok, now)
        if cancelled():
            finish = "cancelled"
            break
        if n_out >= p.max_tokens:
            finish = "length"
            break
    else:
        finish = "stop"  # the runtime ran out of ids (its own end of generation)
    ids.close()
    if held and finish != "stop":
        yield ("tok", held, -1, time.monotonic())
    yield ("done", {
        "prompt_tokens": prompt_tokens, "prompt_reused": reused,
        "prompt_ms": (t_first - start) * 1000 if t_first else 0.0,
        "decode_tokens": n_out, "decode_ms": (t_last - t_first) * 1000 if n_out > 1 else 0.0,
        "finish": finish, "token_times": times,
    })


def find_stop(text: str, stops: tuple[str, ...]) -> int | None:
    """Where the first stop string in `text` begins, or None."""
    hits = [i for s in stops if s and (i := text.find(s)) >= 0]
    return min(hits) if hits else None


def stop_prefix_len(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest tail of `text` that could still grow into a stop string."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if s.startswith(text[-k:]):
                best = max(best, k)
                break
    return best
