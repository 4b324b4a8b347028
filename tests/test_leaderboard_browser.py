"""The leaderboard page in a real browser: headless Chromium (Debian's chromium + chromedriver, driven
by selenium) over the page generated from the committed results, served from a file:// URL.

Clicking a column header sorts the rows (and again reverses them), the noise ceiling stays in the
footer, the task filter leaves one task's section, the name filter leaves matching rows only, and
the table of contents links to every section. Skipped, with how to install them, where the browser,
its driver or selenium is missing (`.ci/run` installs them).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tdabench.report import build_leaderboard, read_relative, results_files, write_leaderboard

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = ("needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver) "
           "and selenium (pip install -e '.[test]')")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")
RESULTS = Path(__file__).resolve().parents[1] / "leaderboard" / "results"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """index.html built from the committed results (no plots), next to a copy of them."""
    out = tmp_path_factory.mktemp("leaderboard")
    shutil.copytree(RESULTS, out / "results")
    tables = build_leaderboard(read_relative(results_files(out / "results"), out), "pearson")
    assert len(tables) >= 2, "the committed results should hold several tasks"
    write_leaderboard(tables, out, "tdabench leaderboard", plots=False)
    return out / "index.html"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver", reason=INSTALL)
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(INSTALL)
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    # The driver is given explicitly, so selenium-manager never looks for (or downloads) one.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _visible_labels(table) -> list[str]:  # noqa: ANN001 (a selenium WebElement)
    from selenium.webdriver.common.by import By
    return [tr.get_attribute("data-estimator") for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")
            if tr.is_displayed()]


def _column_values(table, col: int) -> list[float | None]:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    out = []
    for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr"):
        v = tr.find_elements(By.TAG_NAME, "td")[col].get_attribute("data-value")
        out.append(None if v in (None, "") else float(v))
    return out


def test_sorting_by_a_column_header(browser, page: Path) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    browser.get(page.as_uri())
    section = browser.find_elements(By.CSS_SELECTOR, "section.task")[0]
    table = section.find_element(By.CSS_SELECTOR, "table.task-table")
    before = _visible_labels(table)
    headers = table.find_elements(By.CSS_SELECTOR, "thead th")
    # the estimator column: first click ascending by name, second descending
    headers[0].click()
    by_name = _visible_labels(table)
    assert by_name == sorted(before) and by_name != before
    assert headers[0].get_attribute("aria-sort") == "ascending"
    headers[0].click()
    assert _visible_labels(table) == sorted(before, reverse=True)
    # the first horizon's column (after "given"): numbers, best first; cells without a value stay last
    assert headers[1].text == "given"
    headers[2].click()
    values = _column_values(table, 2)
    known = [v for v in values if v is not None]
    assert known == sorted(known, reverse=True) and values[:len(known)] == known
    assert headers[2].get_attribute("aria-sort") == "descending"
    assert headers[0].get_attribute("aria-sort") is None
    # the noise ceiling is in the footer, not among the sorted rows
    assert table.find_element(By.CSS_SELECTOR, "tfoot td").text == "noise ceiling"
    assert "noise ceiling" not in _visible_labels(table)


def test_filtering_to_one_task_and_by_name(browser, page: Path) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(page.as_uri())
    sections = browser.find_elements(By.CSS_SELECTOR, "section.task")
    tasks = [s.get_attribute("data-task") for s in sections]
    assert all(s.is_displayed() for s in sections) and len(set(tasks)) >= 2
    chosen = tasks[1]
    Select(browser.find_element(By.ID, "task-filter")).select_by_value(chosen)
    shown = [s.get_attribute("data-task") for s in sections if s.is_displayed()]
    assert shown == [t for t in tasks if t == chosen]
    name = browser.find_element(By.ID, "estimator-filter")
    name.send_keys("if-")
    visible = [s for s in sections if s.is_displayed()]  # one section per gold-standard mode of the task
    assert visible and all(s.get_attribute("data-task") == chosen for s in visible)
    for section in visible:
        labels = _visible_labels(section.find_element(By.CSS_SELECTOR, "table.task-table"))
        assert labels and all("if-" in label for label in labels)
    summary = browser.find_element(By.CSS_SELECTOR, "table.summary-table")
    assert all("if-" in label for label in _visible_labels(summary))
    Select(browser.find_element(By.ID, "task-filter")).select_by_value("")
    name.clear()
    name.send_keys(" ")  # an input event with an empty filter shows everything again
    assert all(s.is_displayed() for s in sections)


def test_filtering_by_what_the_estimators_were_given(browser, page: Path) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(page.as_uri())
    given = Select(browser.find_element(By.ID, "uses-filter"))
    given.select_by_value("further-training-recipe")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.task-table tbody tr")
    shown = {tr.get_attribute("data-estimator") for tr in rows if tr.is_displayed()}
    assert shown == {"if-lissa-horizon"}  # the only built-in given the gold standard's recipe
    given.select_by_value("")
    assert all(tr.is_displayed() for tr in rows)


def test_contents_link_every_section(browser, page: Path) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    browser.get(page.as_uri())
    targets = [a.get_attribute("href").rpartition("#")[2]
               for a in browser.find_elements(By.CSS_SELECTOR, "nav#contents a")]
    sections = browser.find_elements(By.CSS_SELECTOR, "section[id]")
    ids = [e.get_attribute("id") for e in sections]
    assert len(ids) == len(set(ids)) and len(targets) == len(set(targets))  # one entry, one section
    assert targets and set(targets) == set(ids)
    assert {"across-tasks", "methods", "submit"} <= set(ids)
    # a task with results against two gold-standard modes has two sections, told apart by their headings
    headings = [e.find_element(By.CSS_SELECTOR, "h2").text for e in sections]
    assert len(headings) == len(set(headings))
    assert "across-tasks-derivative" in ids  # the committed results hold derivative-mode tables
    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert errors == []  # the inline script ran without errors
