"""The driver says where the Ray dashboard is and how to get past its token dialog."""

from __future__ import annotations

from raysweep.run import dashboard_line


def test_no_dashboard():
    assert dashboard_line(None, remote=False, auth="token") == "[raysweep] Ray dashboard: off"


def test_without_token_authentication_only_the_url():
    line = dashboard_line("127.0.0.1:8265", remote=False, auth=None)
    assert line == "[raysweep] Ray dashboard: http://127.0.0.1:8265"
    assert dashboard_line("127.0.0.1:8265", remote=False, auth="disabled") == line


def test_a_local_ray_with_a_token_says_how_to_read_it():
    url, how = dashboard_line("127.0.0.1:8265", remote=False, auth="token").splitlines()
    assert url == "[raysweep] Ray dashboard: http://127.0.0.1:8265"
    assert "`ray get-auth-token`" in how and "~/.ray/auth_token" in how


def test_a_cluster_with_a_token_points_at_the_cluster_token():
    how = dashboard_line("10.0.0.1:8265", remote=True, auth="TOKEN").splitlines()[1]
    assert "ray exec cluster.yaml 'ray get-auth-token'" in how
