from fctlib.progress import progress


def test_bars_are_switched_off_by_fct_progress_0(monkeypatch):
    monkeypatch.delenv("FCT_PROGRESS", raising=False)
    assert not progress(range(3)).disable
    monkeypatch.setenv("FCT_PROGRESS", "0")
    bar = progress(range(3), desc="x")
    assert bar.disable and list(bar) == [0, 1, 2]
