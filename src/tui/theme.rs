//! Colours. A dark and a light theme use only the 16 ANSI colours (which
//! terminals adapt to their background) with foregrounds chosen to stay
//! readable on both; `NO_COLOR` / `--no-color` keeps only bold, reverse and
//! underline, so health is still told apart by text and weight.

use ratatui::style::{Color, Modifier, Style};

use super::state::Health;

/// Which palette.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThemeKind {
    #[default]
    Dark,
    Light,
    /// No colour at all.
    Mono,
}

impl ThemeKind {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "dark" => Some(Self::Dark),
            "light" => Some(Self::Light),
            "mono" | "none" => Some(Self::Mono),
            _ => None,
        }
    }
}

/// Styles used by the view.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub kind: ThemeKind,
}

impl Theme {
    pub fn new(kind: ThemeKind) -> Self {
        Self { kind }
    }

    fn fg(self, dark: Color, light: Color) -> Style {
        match self.kind {
            ThemeKind::Dark => Style::new().fg(dark),
            ThemeKind::Light => Style::new().fg(light),
            ThemeKind::Mono => Style::new(),
        }
    }

    pub fn health(self, health: Health) -> Style {
        match (self.kind, health) {
            (ThemeKind::Mono, Health::Bad) => Style::new().add_modifier(Modifier::BOLD),
            (ThemeKind::Mono, Health::Warn) => Style::new().add_modifier(Modifier::UNDERLINED),
            (ThemeKind::Mono, _) => Style::new(),
            (_, Health::Bad) => self.fg(Color::LightRed, Color::Red).add_modifier(Modifier::BOLD),
            (_, Health::Warn) => self.fg(Color::Yellow, Color::Magenta),
            (_, Health::Good) => self.fg(Color::Green, Color::Green),
            (_, Health::Idle) => self.fg(Color::Gray, Color::DarkGray),
        }
    }

    pub fn title(self) -> Style {
        self.fg(Color::Cyan, Color::Blue).add_modifier(Modifier::BOLD)
    }

    pub fn header(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    pub fn dim(self) -> Style {
        match self.kind {
            ThemeKind::Mono => Style::new(),
            _ => self.fg(Color::Gray, Color::DarkGray),
        }
    }

    pub fn border(self, focused: bool) -> Style {
        match (self.kind, focused) {
            (ThemeKind::Mono, true) => Style::new().add_modifier(Modifier::BOLD),
            (ThemeKind::Mono, false) => Style::new(),
            (_, true) => self.fg(Color::Cyan, Color::Blue),
            (_, false) => self.fg(Color::DarkGray, Color::Gray),
        }
    }

    pub fn key(self) -> Style {
        self.fg(Color::Cyan, Color::Blue).add_modifier(Modifier::BOLD)
    }

    pub fn gauge(self) -> Style {
        self.fg(Color::Cyan, Color::Blue)
    }
}
