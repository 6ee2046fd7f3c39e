"""dtrain.nn.functional: the math of every layer, one family per file (each lists its names in __all__)."""
from ._activation import *  # noqa: F401,F403
from ._linear import *  # noqa: F401,F403
from ._loss import *  # noqa: F401,F403
from ._dropout import *  # noqa: F401,F403
from ._sparse import *  # noqa: F401,F403
from ._conv import *  # noqa: F401,F403
from ._pool import *  # noqa: F401,F403
from ._norm import *  # noqa: F401,F403
from ._local_norm import *  # noqa: F401,F403
from ._attention import *  # noqa: F401,F403
from ._pad import *  # noqa: F401,F403
from ._distance import *  # noqa: F401,F403
from ._vision import *  # noqa: F401,F403
from ._sample import *  # noqa: F401,F403
from ._fractional import *  # noqa: F401,F403
from ._ctc import *  # noqa: F401,F403
