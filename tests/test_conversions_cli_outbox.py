"""`careers-edge outbox`: counts, waiting rows, dead letters, re-queue."""

from __future__ import annotations

import io

from proxy.config.model import Config, ProxySection, Sink
from proxy.conversions.cli_outbox import outbox_command
from proxy.conversions.events import Event
from proxy.conversions.sqlite_outbox import SqliteOutbox

TALROO = Sink("talroo", "talroo")
META = Sink("meta", "meta")


async def run(config: Config, **kw) -> str:
    out = io.StringIO()
    assert await outbox_command(config, out=out, **kw) == 0
    return out.getvalue()


async def test_counts_rows_dead_letters_and_retry_dead(tmp_path):
    path = tmp_path / "state.db"
    config = Config(proxy=ProxySection(upstream="http://u", state=f"sqlite:///{path}"))
    box = SqliteOutbox(str(path))
    for i in range(3):
        await box.submit(Event("ApplicationCompleted", event_id=f"e{i}", links_clicked_id=f"v{i}",
                               click_ids={"tlr_sid": "s"}), [TALROO, META], consent=True)
    rows = await box.lease("meta", "w", 1, 60)
    await box.mark_dead([rows[0].id], "w", "HTTP 400", '{"error": {"message": "Invalid"}}')
    await box.close()

    text = await run(config)
    header, talroo_line = text.splitlines()[0], text.splitlines()[2]
    assert header.split() == ["sink", "pending", "leased", "sent", "retry", "dead"]
    assert talroo_line.split() == ["talroo", "3", "0", "0", "0", "0"]
    assert text.splitlines()[1].split() == ["meta", "2", "0", "0", "0", "1"]
    assert "waiting:" in text and "event_id=e2" in text and "Invalid" not in text

    text = await run(config, dead=True)
    assert "dead letters:" in text and "error: HTTP 400" in text
    assert 'body: {"error": {"message": "Invalid"}}' in text

    text = await run(config, retry_dead=True)
    assert text.startswith("re-queued 1 dead letter\n")
    assert "meta                        3        0        0        0        0" in text


async def test_an_unopenable_state_is_an_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    config = Config(proxy=ProxySection(upstream="http://u", state=f"sqlite:///{blocker}/db"))
    assert await outbox_command(config, out=io.StringIO()) == 1
    assert "cannot open the state" in capsys.readouterr().err
