"""Project settings (see Kedro's configuration docs for the defaults)."""

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

from thitogene_kedro.hooks import ParameterLoggingHooks, ParameterRestoringHooks, ProjectHooks, RunTagHooks

_parameter_logging = ParameterLoggingHooks()
HOOKS = (ProjectHooks(), RunTagHooks(), _parameter_logging, ParameterRestoringHooks(_parameter_logging))

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
