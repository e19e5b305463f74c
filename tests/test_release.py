"""The release model's builders: colors, state, kept images, refs."""
import pytest

from aether import inventory, release


@pytest.fixture
def helios():
    return inventory.load().apps["helios"]


def live(commit, color="blue"):
    return {"color": color, "commit": commit, "image": f"helios:{commit[:12]}"}


class TestColors:
    def test_the_idle_color_is_the_other_one(self):
        assert release.other("blue") == "green" and release.other("green") == "blue"

    def test_names_follow_app_env_color(self, helios):
        assert release.project(helios, "prod", "green") == "helios-prod-green"
        assert helios.color_name("prod", "green") == "helios-prod-web-green"
        assert helios.stable_name("prod") == "helios-prod-web"


class TestState:
    def test_the_previous_live_release_heads_the_history(self, helios):
        first = release.next_state({}, helios, "prod", live("a" * 40))
        second = release.next_state(first, helios, "prod", live("b" * 40, "green"))
        assert second["live"]["commit"] == "b" * 40
        assert [r["commit"] for r in second["history"]] == ["a" * 40]

    def test_history_is_capped(self, helios):
        state = {}
        for n in range(30):
            state = release.next_state(state, helios, "prod", live(f"{n:040d}"))
        assert len(state["history"]) == release.HISTORY

    def test_images_kept_are_each_envs_live_one_and_its_last_releases(self):
        states = {
            "prod": {"live": live("c" * 40), "history": [live("b" * 40), live("a" * 40)]},
            "dev": {"live": live("d" * 40), "history": []},
        }
        assert release.images_to_keep(states, keep=1) == {
            "helios:cccccccccccc", "helios:bbbbbbbbbbbb", "helios:dddddddddddd"}


class TestRefs:
    @pytest.mark.parametrize("ref, problem", [
        ("", "is empty"), ("-x", "starts with '-'"), ("--upload-pack=x", "starts with '-'"),
        ("a\nb", "contains a control character"), ("main", None), ("v1.2", None),
        ("$(touch /tmp/x)", None),   # harmless: quoted, and fails as unknown on the server
    ])
    def test_only_refs_that_can_never_be_a_commit_are_refused_locally(self, ref, problem):
        assert release.ref_problem(ref) == problem

    def test_the_ref_reaches_the_fetch_script_as_one_quoted_word(self, helios):
        host = inventory.load().host("vps1")
        script = release.fetch_script(host, helios, "$(touch${IFS}/tmp/pwned)")
        assert "ref='$(touch${IFS}/tmp/pwned)'" in script
        assert script.count("$(touch") == 1


class TestInspectOutput:
    def test_sections_and_states_are_parsed(self):
        out = ("@@state helios-prod\n{\"live\": {\"color\": \"blue\"}}\n@@networks\nweb\nbackend\n"
               "@@nginx\ntrue\n")
        sections = release.parse_sections(out)
        assert sections["networks"] == ["web", "backend"]
        assert release.states(sections) == {"prod": {"live": {"color": "blue"}}}


class TestRollbackChoices:
    def test_kept_releases_skip_the_live_commit_and_repeats(self):
        state = {"live": live("c" * 40), "history": [live("c" * 40), live("b" * 40),
                                                     live("b" * 40), live("a" * 40)]}
        assert [r["commit"][0] for r in release.kept(state, 3)] == ["b", "a"]

    def test_to_picks_one_kept_release_by_prefix(self):
        earlier = [live("ab" + "0" * 38), live("ac" + "0" * 38)]
        assert release.pick_release(earlier, None, "x") == earlier[0]
        assert release.pick_release(earlier, "AC", "x") == earlier[1]

    @pytest.mark.parametrize("to, problem", [("a", "matches several"), ("ff", "matches none"),
                                             ("", "is not a commit"), ("$(id)", "is not a commit")])
    def test_an_unclear_to_is_refused(self, to, problem):
        from aether.errors import AetherError
        earlier = [live("ab" + "0" * 38), live("ac" + "0" * 38)]
        with pytest.raises(AetherError, match=problem.replace("(", r"\(")):
            release.pick_release(earlier, to, "helios prod")
