"""ipywidgets dashboards: traitlets state + FigureWidget views built from plotting/."""
