"""Write a format-2 model file with the pre-PyG-MLP layout (run against git HEAD's package)."""
import sys, warnings
import numpy as np
warnings.simplefilter("ignore")
import marble_widgets as mw
from marble_widgets.estimator import MARBLE
import marble_widgets.model_file as mf
assert mw.__file__.startswith("/tmp/h1/orig_pkg"), mw.__file__
assert mf.FORMAT_VERSION == 2
rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, (90, 2))
v = np.c_[-x[:, 1], x[:, 0]] + 0.1 * x
ff = mw.flow_field_from_arrays(x, v)
model = MARBLE(k=8, order=1, hidden_channels=(8, 6), out_dim=2, dropout=0.1, epochs=2, diffusion=False,
               inner_product_features=True, verbose=False, seed=0).fit(ff)
out = sys.argv[1]
model.save(out + "/model_format2.pt")
np.save(out + "/model_format2_embedding.npy", model.transform(ff).values)
print(sorted(model.network_.state_dict()))
model = MARBLE(k=8, order=1, hidden_channels=(5,), out_dim=2, batch_norm=False, epochs=2, verbose=False,
               seed=1).fit(ff)
model.save(out + "/model_format2_plain.pt")
np.save(out + "/model_format2_plain_embedding.npy", model.transform(ff).values)
print(sorted(model.network_.state_dict()))
