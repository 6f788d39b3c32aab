"""Hydra search-path plugin: makes ``+algorithm=chrpo`` resolvable in verl's ``main_ppo``.

Hydra discovers plugins in the ``hydra_plugins`` namespace package (no ``__init__.py`` in
``plugins/hydra_plugins``); this one appends ``pkg://extra_cot.rl.config`` to every Hydra
application's search path, so ``extra_cot/rl/config/algorithm/chrpo.yaml`` joins verl's
``algorithm`` config group.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

#: Where our presets live (a package inside ``extra_cot``, shipped in the wheel).
CONFIG_PACKAGE = "pkg://extra_cot.rl.config"


class ExtraCotSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="extra-cot", path=CONFIG_PACKAGE)
