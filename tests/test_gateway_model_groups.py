"""``gateway.model_groups`` end to end: echo provider processes that name one model differently,
the real gateway process, the official openai client."""

from __future__ import annotations

from pathlib import Path

from support.gateway import Cluster, chat

GROUPS = {"K2-Think": ["MBZUAI-IFM/K2-Think", "k2-think"]}


def test_failover_crosses_providers_that_name_the_model_differently(tmp_path: Path) -> None:
    providers = [("k2", ("--models", "k2-think", "--strict-models", "--failure", "text-502")),
                 ("mbzuai", ("--models", "MBZUAI-IFM/K2-Think", "--strict-models"))]
    fields = {"k2": {"models": ["k2-think"]}, "mbzuai": {"models": ["MBZUAI-IFM/K2-Think"]}}
    with Cluster(tmp_path, providers, fields, model_groups=GROUPS, strategy="model_specific",
                 routes={"K2-Think": ["k2", "mbzuai"]}, eject_after=100) as c:
        client = c.client()
        raw = client.chat.completions.with_raw_response.create(
            model="K2-Think", messages=[{"role": "user", "content": "which model"}])
        answer = raw.parse()
        assert raw.headers["x-unigw-provider"] == "mbzuai"
        assert answer.choices[0].message.content == "which model"
        assert answer.model == "MBZUAI-IFM/K2-Think"  # --strict-models: it was asked its own name
        assert c.chat_requests("k2") == 1 and c.echo_stats("k2")["chats_failed"] == 1
        assert chat(client, "by a member's name", model="k2-think") == (
            "mbzuai", "by a member's name")
        listed = {m.id: m for m in client.models.list().data}
        assert set(listed) == {"K2-Think"}
        group = listed["K2-Think"].model_dump()
        assert group["members"] == ["MBZUAI-IFM/K2-Think", "k2-think"]
        assert group["providers"] == ["k2", "mbzuai"] and group["owned_by"] == "k2"
