"""A math-verify worker process (run by hipo.tasks.grading; standalone, imports nothing from hipo).

Protocol on stdin/stdout, one JSON line each way: it prints ``"ready"`` once, then answers every
``[gold, predicted]`` with ``true`` or ``false``. It runs math-verify with its signal timeouts off;
the parent bounds the time and kills this process on overrun. It exits when stdin closes.
"""

import json
import logging
import sys
from functools import lru_cache


def main() -> None:
    logging.disable(logging.WARNING)  # math-verify warns on every call that timeouts are off
    from math_verify import parse, verify

    def parse_boxed(text: str) -> list:
        # bare LaTeX ("\\frac{\\pi}{2}", "(3,4]") is only recognised inside \\boxed{} or $...$
        math_mode = "\\boxed" in text or "$" in text.replace("\\$", "")  # "\\$40" is a dollar sign
        boxed = text if math_mode else f"\\boxed{{{text}}}"
        return parse(boxed, parsing_timeout=None)

    parse_gold = lru_cache(maxsize=4096)(parse_boxed)

    def check(gold: str, pred: str) -> bool:
        g = parse_gold(gold)
        if not g:
            return False
        if verify(g, parse_boxed(pred), timeout_seconds=None):
            return True
        # boxing fails on prose ("The answer is 5"); fall back to free extraction
        return bool(verify(g, parse(pred, parsing_timeout=None), timeout_seconds=None))

    out = sys.stdout
    out.write('"ready"\n')
    out.flush()
    for line in sys.stdin:
        try:
            gold, pred = json.loads(line)
            ok = check(str(gold), str(pred))
        except Exception:
            ok = False
        out.write("true\n" if ok else "false\n")
        out.flush()


if __name__ == "__main__":
    main()
