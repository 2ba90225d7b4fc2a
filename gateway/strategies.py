"""Load-balancing strategies: a registry of small classes found by name.

(Placeholder registry of names only: the gateway issue implements each strategy here.)
"""

STRATEGIES: dict[str, object] = {
    name: None
    for name in (
        "round_robin",
        "least_connections",
        "response_time",
        "random",
        "weighted_round_robin",
        "health_based",
        "model_specific",
    )
}
