"""The browser teleop page end to end in a real headless Chromium (Selenium): a drag on the top view
moves the twin's pusher target, and closing the page stops the robot (the pusher holds)."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request

import numpy as np
import pytest

from policies.teleop import BrowserConfig, BrowserTeleop, EpisodeEvent, TargetLimits, make_teleop

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver")


def _browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=800,600"):
        opts.add_argument(a)
    opts.binary_location = CHROMIUM
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def _wait(cond, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_drag_moves_the_twin_pusher_and_closing_the_page_stops_it():
    from selenium.webdriver.common.action_chains import ActionChains

    from twin.config import TwinConfig
    from twin.env import PushTEnv

    twin = TwinConfig()
    teleop = make_teleop("browser", twin, browser=BrowserConfig(port=0, heartbeat_timeout_s=0.6))
    assert isinstance(teleop, BrowserTeleop)
    env = PushTEnv(twin)
    obs, _ = env.reset(seed=2)
    start = obs.pusher_xy[0].copy()
    teleop.connect()
    driver = _browser()
    try:
        assert teleop.url.startswith("http://127.0.0.1:")
        driver.get(teleop.url)
        _wait(lambda: teleop.page_connected, 10, "the page never polled")
        np.testing.assert_allclose(teleop.get_action(obs), start)  # no drag yet: hold
        canvas = driver.find_element("id", "view")
        w, h = canvas.size["width"], canvas.size["height"]
        assert (w, h) == (480, 288)
        # drag from the centre to (+60, -40) px: canvas x = -y world, canvas y = -x world
        ActionChains(driver).move_to_element(canvas).click_and_hold().move_by_offset(30, -20) \
            .move_by_offset(30, -20).release().perform()
        u, v = w / 2 + 60, h / 2 - 40
        want = np.array([0.72 - v / h * 0.36, 0.30 - u / w * 0.60])
        _wait(lambda: np.linalg.norm(teleop.get_action(obs) - want) < 3e-3, 5, "the drag did not set the target")
        for _ in range(20):  # the live loop: the twin follows the page's target
            a = teleop.get_action(obs)
            obs, *_ = env.step(a[None])
            time.sleep(0.02)
        assert np.linalg.norm(obs.pusher_xy[0] - want) < 0.01
        assert np.linalg.norm(obs.pusher_xy[0] - start) > 0.1
        assert "episode" in driver.find_element("id", "status").text
        # a bad request is refused and changes nothing
        req = urllib.request.Request(teleop.url + "target", data=json.dumps({"x": "nan?"}).encode(), method="POST")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(req, timeout=2)
        np.testing.assert_allclose(teleop.get_action(obs), want, atol=3e-3)
        assert teleop.events() == []
    finally:
        driver.quit()  # the operator closes the page
    held = None
    deadline = time.monotonic() + 3.0
    events: list = []
    while time.monotonic() < deadline:
        a = teleop.get_action(obs)
        events += teleop.events()
        if EpisodeEvent.STOP in events:
            held = a
            break
        obs, *_ = env.step(a[None])
        time.sleep(0.05)
    assert held is not None, "closing the page did not stop the collection"
    np.testing.assert_allclose(held, obs.pusher_xy[0])  # the target is the pusher itself: it stops there
    before = obs.pusher_xy[0].copy()
    for _ in range(5):
        obs, *_ = env.step(teleop.get_action(obs)[None])
    assert np.linalg.norm(obs.pusher_xy[0] - before) < 1e-3
    teleop.disconnect()


def test_events_from_the_page_buttons():
    teleop = BrowserTeleop(BrowserConfig(port=0), TargetLimits())
    teleop.connect()
    driver = _browser()
    try:
        driver.get(teleop.url)
        _wait(lambda: teleop.page_connected, 10, "the page never polled")
        for button in ("rerecord", "next", "stop"):
            driver.find_element("id", button).click()
        _wait(lambda: len(teleop._events) >= 3, 5, "button events did not arrive")
        assert teleop.events() == [EpisodeEvent.RERECORD, EpisodeEvent.NEXT, EpisodeEvent.STOP]
    finally:
        driver.quit()
        teleop.disconnect()
