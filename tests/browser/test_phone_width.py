"""Issue 10 at 390 px: the runs list, a run's items and the cohort's units table keep
every column reachable: the page never scrolls sideways, and a table wider than the
screen scrolls inside its own box. Screenshots: var/screenshots/phone_width/."""

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from reports.constants import ErrorClass
from reports.models import RunKind, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}

# For each table: inside the viewport, or inside a box that scrolls sideways and is.
CHECK = """() => {
  const width = document.documentElement.clientWidth;
  const problems = [];
  if (document.documentElement.scrollWidth > width + 1) {
    problems.push("page scrolls sideways: " + document.documentElement.scrollWidth);
  }
  for (const table of document.querySelectorAll("main table")) {
    if (!table.offsetParent) continue;  // inside a closed <details>
    const box = table.closest(".table-wrap");
    const rect = (box || table).getBoundingClientRect();
    if (rect.right > width + 1) problems.push("box past the screen: " + table.className);
    if (!box && table.getBoundingClientRect().right > width + 1) {
      problems.push("table without a scrolling box: " + table.className);
    }
    if (box && table.scrollWidth > box.clientWidth + 1) {
      const style = getComputedStyle(box).overflowX;
      if (style !== "auto" && style !== "scroll") problems.push("box does not scroll");
    }
  }
  return problems;
}"""


@pytest.fixture(scope="session", autouse=True)
def plotly_in_static():
    call_command("vendor_plotly", verbosity=0)


@pytest.fixture
def phone(browser, live_server):
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    yield page
    context.close()


def sign_in(page, live_server, username, password):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def test_runs_list_and_run_items_fit_a_phone(phone, live_server, admin_user, run_factory, shots):
    long = "Row 14: the classroom 'HIST-999' does not exist in APEX (HTTP 404); check it."
    run = run_factory(
        kind=RunKind.APEX_ENROLL,
        subject="a-rather-long-roster-file-name-for-the-fall-term.csv",
        status=RunStatus.PARTIAL,
        counts={"rows": 3, "classrooms": 2, "enrolled": 2, "failed": 1},
        items=[
            {"key": "S100001", "label": "Row 2", "group": "ALG-101", "outcome": "enrolled"},
            {"key": "S100002", "label": "Row 3", "group": "ALG-101", "outcome": "enrolled"},
            {
                "key": "S100003",
                "label": "Row 4",
                "group": "HIST-999",
                "outcome": "failed",
                "error_class": ErrorClass.NOT_FOUND,
                "message": long,
            },
        ],
    )
    for n in range(3):
        run_factory(subject=f"Cohort {n}", counts={"fetched": 10, "unchanged": 10, "failed": 0})
    sign_in(phone, live_server, "ada", "pw-admin-1")
    phone.goto(f"{live_server.url}/runs/")
    assert phone.evaluate(CHECK) == []
    shots(phone, "runs-list")
    phone.goto(f"{live_server.url}/runs/{run.pk}/")
    assert phone.evaluate(CHECK) == []
    shots(phone, "run-items")


# A chart's legend overlaps none of its axis titles or tick labels.
OVERLAPS = """() => {
  const hit = (a, b) =>
    a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  const found = [];
  for (const chart of document.querySelectorAll(".chart")) {
    const legend = chart.querySelector(".legend");
    if (!legend) continue;
    const box = legend.getBoundingClientRect();
    const texts = chart.querySelectorAll(".xtitle, .ytitle, .gtitle, .xtick text, .ytick text");
    for (const text of texts) {
      if (hit(box, text.getBoundingClientRect())) found.push(text.textContent);
    }
  }
  return found;
}"""


def test_cohort_units_table_and_charts_fit_a_phone(
    phone, live_server, mentor_a, cohort_a, ids, shots
):
    sign_in(phone, live_server, "mia", "pw-mentor-1")
    phone.goto(f"{live_server.url}/cohorts/{cohort_a.pk}/")
    expect(phone.locator(".chart .legend").first).to_be_attached(timeout=15_000)
    assert phone.evaluate(CHECK) == []
    assert phone.evaluate(OVERLAPS) == []
    shots(phone, "cohort-health")
    phone.locator("#completion").screenshot(path=str(shots.folder / "completion-chart.png"))
