"""The REMB estimator's two loops replaced on the relay's receive path give aiortc's figures."""

from __future__ import annotations

import random

from aiortc.rate import OveruseEstimator, RateCounter, RemoteBitrateEstimator

from services.relay.rate_window import WindowRate, least_frame_period, speed_up


def test_the_window_rate_answers_what_aiortcs_rate_counter_answers() -> None:
    chance = random.Random(3)
    for _ in range(100):
        stock, window = RateCounter(1000, 8000), WindowRate(1000, 8000)
        now = chance.randrange(10**6)
        for _ in range(300):
            now += chance.choice([0, 0, 1, 5, 33, 34, 200, 999, 1000, 1001, 3000])
            roll = chance.random()
            if roll < 0.5:
                value = chance.randrange(9000)
                stock.add(value, now)
                window.add(value, now)
            elif roll < 0.98:
                assert window.rate(now) == stock.rate(now)
            else:
                stock.reset()
                window.reset()


def test_an_estimator_sped_up_midway_keeps_the_samples_it_had() -> None:
    estimator, stock = RemoteBitrateEstimator(), RateCounter(1000, 8000)
    now = 5000
    for size in range(100, 150):
        now += 7
        estimator.incoming_bitrate.add(size, now)
        stock.add(size, now)
    speed_up(estimator)
    for size in range(500):
        now += 13
        estimator.incoming_bitrate.add(size, now)
        stock.add(size, now)
        assert estimator.incoming_bitrate.rate(now) == stock.rate(now)


def test_the_least_frame_period_is_aiortcs() -> None:
    chance = random.Random(4)
    stock, history = OveruseEstimator(), []
    for _ in range(500):
        delta = chance.choice([33.0, 33.3, 30.0, 66.7, 1.5, 100.0]) + chance.random()
        assert least_frame_period(history, delta) == stock.update_min_frame_period(delta)
        assert history == stock.ts_delta_hist


def test_a_sped_up_estimator_estimates_what_aiortcs_estimates() -> None:
    chance = random.Random(6)
    stock, sped_up = RemoteBitrateEstimator(), RemoteBitrateEstimator()
    speed_up(sped_up)
    arrival, send = 1_000_000, 0
    for _ in range(3000):
        send += 33 + chance.randrange(3)
        arrival += 33 + chance.randrange(-5, 12)
        size = chance.randrange(2000, 9000)
        abs_send_time = (send * 262) & 0xFFFFFF
        assert sped_up.add(arrival, abs_send_time, size, 7) == stock.add(arrival, abs_send_time, size, 7)
