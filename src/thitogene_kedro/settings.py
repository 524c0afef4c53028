"""Project settings (see Kedro's configuration docs for the defaults)."""

import warnings

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

from thitogene_kedro.hooks import (
    EpochMetricsHooks,
    ParameterLoggingHooks,
    ParameterRestoringHooks,
    ProgressHooks,
    ProjectHooks,
    RunTagHooks,
    StaleOutputHooks,
    VizAnnDataStatsHooks,
)

# Kedro 1.7 and kedro-mlflow 2.0 register their resolvers with OmegaConf 2.4's deprecated
# register_new_resolver (six warnings a command); nothing in this project calls it, and the
# replacement is theirs to adopt.
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning)
# Kedro warns about dataset names with a dot; the only ones here are the fold namespaces' own
# outputs (``fold_B4.test_scores``) that the cross-validation summary reads, which is how Kedro
# names a namespace's datasets.
warnings.filterwarnings("ignore", message=r"One or more dataset names contain '\.'", category=UserWarning)

_parameter_logging = ParameterLoggingHooks()
HOOKS = (
    ProjectHooks(),
    ProgressHooks(),
    EpochMetricsHooks(),
    RunTagHooks(),
    StaleOutputHooks(),
    _parameter_logging,
    ParameterRestoringHooks(_parameter_logging),
    VizAnnDataStatsHooks(),
)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Data roots come from environment variables (HER2ST_DIR, ...) in the catalog, as a user's own
    # download would; Kedro allows ${oc.env:...} only in credentials unless it is registered here.
    "custom_resolvers": {"oc.env": oc.env},
    # An environment (e.g. her2st) overrides single parameter keys, not whole pipeline sections.
    "merge_strategy": {"parameters": "soft"},
}
