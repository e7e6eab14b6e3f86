"""How an encoder reads a pair's score (`ScoreReading`), in the standard library only: export, the format
registry and the gateway-side CLI read it without importing torch (causal_lm_score.py, which runs it, does).
Copied beside the python-backend encoder's model.py like its other pure modules."""

from __future__ import annotations

from dataclasses import dataclass


def parse_tokens(text: str) -> tuple[int, ...]:
    """The score tokens as export records them in the encoder's config: "true" or "true,false" ids."""
    return tuple(int(t) for t in text.split(",") if t.strip())


@dataclass(frozen=True)
class ScoreReading:
    """How the encoder reads a pair's score. `tokens` empty and `layer` 0: the model's classifier logits; one
    token: its logit at the pair's last token; two: the first's logit minus the second's (log-odds). `layer` > 0:
    the score of that layer's head at the pair's last token (layerwise rerankers), no layer above it computed."""

    tokens: tuple[int, ...] = ()
    layer: int = 0

    @property
    def score_tokens(self) -> tuple[int, ...] | None:
        return self.tokens or None

    @property
    def causal(self) -> bool:
        return bool(self.tokens or self.layer)

    def parameters(self) -> dict[str, str]:
        """What the encoder's config records (read back by `from_parameters`)."""
        return {"score_tokens": ",".join(str(t) for t in self.tokens), "score_layer": str(self.layer)}

    @classmethod
    def from_parameters(cls, params: dict[str, str]) -> ScoreReading:
        return cls(parse_tokens(params.get("score_tokens", "")), int(params.get("score_layer", "0") or 0))
