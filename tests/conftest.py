import os

import jax
import pytest

from visjax.zoo import digits_cnn, init_digits_cnn_params

FORMS = ("nnx", "linen", "function")


@pytest.fixture(scope="session")
def cnn_params():
    return init_digits_cnn_params(jax.random.key(42))


@pytest.fixture(scope="session")
def cnn_models(cnn_params):
    """The digits CNN in its three forms, with identical weights."""
    return {form: digits_cnn(form, cnn_params) for form in FORMS}


@pytest.fixture(scope="session")
def batch():
    return jax.random.uniform(jax.random.key(7), (5, 8, 8, 1))


@pytest.fixture(autouse=True, scope="session")
def _private_weight_cache(tmp_path_factory):
    """Tests never touch the user's cache folder; the run's cache is shared by its xdist workers.

    Each worker (a process of its own) gets its own ``basetemp`` below the run's; the cache sits
    in the run's, so a model trained by one worker is loaded by the others. Cache writes are atomic
    (:mod:`visjax.zoo.cache`), so two workers training the same entry at once is harmless.
    """
    root = tmp_path_factory.getbasetemp()
    folder = (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / "visjax-cache"
    folder.mkdir(exist_ok=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("VISJAX_CACHE", str(folder))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def trained_digits(_private_weight_cache):
    """The digits CNN trained for 10 epochs (seed 0), once per run, through the shared cache."""
    from visjax.zoo.pretrained import trained_digits_cnn

    return trained_digits_cnn(epochs=10)


# Cases that took over ~4 s each in `make test` on 2 cores (2026-12-05, --durations): they run in
# `make test-slow` (CI runs both), which keeps `make test` under 6 minutes. Node ids without their
# parameters mark every parameter.
SLOW_CASES = {
    "tests/attribution/test_lrp_transformer.py::test_conservation_per_block_on_the_vit",
    "tests/attribution/test_lrp_transformer.py::test_jit_and_batch_equal_single_examples",
    "tests/featviz/test_render.py::test_auto_batch_size_equals_explicit_and_one_chunk",
    "tests/featviz/test_render.py::test_transforms_sequence_is_composed_and_units_named",
    "tests/featviz/test_render.py::test_repeated_render_does_not_retrace",
    "tests/featviz/test_transforms.py::test_scale_and_rotate_equal_a_reference_in_values_and_gradients",
    "tests/zoo/test_resnet_bn.py::test_jit_and_grad",
    "tests/zoo/test_resnet_bn.py::test_inference_mode_by_hand",
    "tests/zoo/test_digits.py::test_training_reaches_95_percent_and_is_deterministic",
    "tests/landscape/test_auto_batch.py::test_error_message_names_the_chunk_auto_chose",
    "tests/curvature/test_curvature.py::test_hvp_under_outer_jit",
    "tests/attribution/test_metrics_perturbation.py::test_infidelity_equals_reference",
    "tests/attribution/test_metrics_perturbation.py::test_sensitivity_analytic",
    "tests/attribution/test_integrated.py::test_auto_batch_size_expected_gradients",
    "tests/attribution/test_surrogate.py::test_auto_batch_size_matches_explicit_sizes",
    "tests/attribution/test_noise_blur.py::test_noise_tunnel_auto_batch_size_matches_explicit_sizes",
    "tests/attribution/test_shapley.py::test_auto_batch_size_matches_explicit_sizes",
    "tests/embed/test_tsne.py::test_fft_method_runs_and_its_gradient_is_close_to_the_exact_one",
    "tests/embed/test_tsne.py::test_gradient_is_a_quarter_of_the_kl_divergence_gradient",
    "tests/embed/test_tsne.py::test_peak_memory_grows_linearly",
    "tests/embed/test_fft.py::test_gradient_within_1e2_on_an_optimised_digits_embedding",
    "tests/embed/test_fft.py::test_repulsion_close_on_a_two_cluster_cloud",
    "tests/embed/test_fft.py::test_matches_tsne_repulsion_exact",
    "tests/report/test_model_section.py::test_model_section_renders_table_graph_weights_and_dead_units",
    "tests/report/test_write.py::test_write_report_for_an_nnx_model",
    "tests/gradstats/test_transform.py::test_track_keeps_the_bare_trajectory_bitwise_and_traces_once",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.split("[")[0] in SLOW_CASES:
            item.add_marker(pytest.mark.slow)
