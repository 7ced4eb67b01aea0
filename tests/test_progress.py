from fctlib.progress import progress


def test_bars_are_switched_off_by_fct_progress_0(monkeypatch):
    monkeypatch.delenv("FCT_PROGRESS", raising=False)
    assert not progress(range(3)).disable
    monkeypatch.setenv("FCT_PROGRESS", "0")
    bar = progress(range(3), desc="x")
    assert bar.disable and list(bar) == [0, 1, 2]


class _Epochs:
    """An iterable that counts its iterators, as a DataLoader draws a shuffle for each."""

    def __init__(self):
        self.iterators = 0

    def __len__(self):
        return 3

    def __iter__(self):
        self.iterators += 1
        return iter(range(3))


def test_a_bar_iterates_its_iterable_once(monkeypatch):
    monkeypatch.delenv("FCT_PROGRESS", raising=False)
    epochs = _Epochs()
    assert list(progress(epochs, leave=False)) == [0, 1, 2] and epochs.iterators == 1
