"""The demo policy (shared/POLICY.md) as constants the models and the benchmark share."""

LABELS: tuple[str, ...] = ("ok", "scam", "drugs", "weapons")
VIOLATING: tuple[str, ...] = ("scam", "drugs", "weapons")
# Ties between violating labels break in this order (POLICY.md rule 4).
TIE_ORDER: tuple[str, ...] = ("weapons", "drugs", "scam")

# Benchmark kinds (POLICY.md "What a benchmark must show").
KINDS: tuple[str, ...] = ("easy_ok", "caption", "speech_only", "onscreen_only", "context_ok", "launder")
HARD_KINDS: tuple[str, ...] = ("speech_only", "onscreen_only", "context_ok", "launder")
