//! Backends: each is compiled in (a cargo feature), present (its device opens), or neither.

use candle_core::Device;

use crate::metal;

/// The kind of a backend, named as everywhere in the workspace.
pub use inference::device::Backend as Kind;

/// More devices of one kind than any machine this runs on has.
const MAX_DEVICES: usize = 16;

/// A backend and what became of opening it.
pub struct Backend {
    pub kind: Kind,
    /// `cpu`, `cuda:0`, `metal:0`; `metal:0 (paravirtual)` for a virtual machine's GPU.
    pub name: String,
    pub state: State,
    /// A virtual machine's Metal device (see [`metal::is_paravirtual`]).
    pub paravirtual: bool,
}

pub enum State {
    Present(Device),
    NotCompiled,
    Absent(String),
}

impl Backend {
    /// Opens device 0 of `kind`, recording why it cannot be used.
    pub fn open(kind: Kind) -> Self {
        Self::open_ordinal(kind, 0)
    }

    /// Device `ordinal` of `kind` (the CPU has only 0).
    pub fn open_ordinal(kind: Kind, ordinal: usize) -> Self {
        let mut name = match kind {
            Kind::Cpu => "cpu".to_string(),
            k => format!("{k}:{ordinal}"),
        };
        let state = if !kind.compiled() {
            State::NotCompiled
        } else {
            let device = match kind {
                Kind::Cpu => Ok(Device::Cpu),
                Kind::Cuda => inference::device::open_cuda(ordinal),
                Kind::Metal => Device::new_metal(ordinal),
            };
            match device {
                Ok(d) => State::Present(d),
                Err(e) => State::Absent(e.to_string()),
            }
        };
        let paravirtual = match &state {
            State::Present(d) => metal::facts(d).is_some_and(|f| f.paravirtual()),
            _ => false,
        };
        if paravirtual {
            name = metal::paravirtual_name(&name);
        }
        Self {
            kind,
            name,
            state,
            paravirtual,
        }
    }

    /// The expected-failure lists that apply, by name: the kind's own, and for a paravirtual
    /// device also `<kind>-paravirtual`, for what fails only for the virtual device's limits.
    pub fn xfail_lists(&self) -> Vec<String> {
        let mut lists = vec![self.kind.name().to_string()];
        if self.paravirtual {
            lists.push(format!("{}-{}", self.kind, metal::PARAVIRTUAL));
        }
        lists
    }

    /// Every device of `kind`: device 0 as it opens (present or why not), then devices 1, 2,
    /// ... while they open.
    pub fn open_all(kind: Kind) -> Vec<Self> {
        let mut all = vec![Self::open(kind)];
        if kind != Kind::Cpu && all[0].device().is_some() {
            for ordinal in 1..MAX_DEVICES {
                let next = Self::open_ordinal(kind, ordinal);
                if next.device().is_none() {
                    break;
                }
                all.push(next);
            }
        }
        all
    }

    pub fn device(&self) -> Option<&Device> {
        match &self.state {
            State::Present(d) => Some(d),
            _ => None,
        }
    }

    pub fn status(&self) -> String {
        match &self.state {
            State::Present(_) => "present".into(),
            State::NotCompiled => format!("not compiled (build with `--features {}`)", self.kind),
            State::Absent(why) => format!("absent: {why}"),
        }
    }

    /// Why nothing ran on this backend, for skipped rows.
    pub fn skip_reason(&self) -> Option<String> {
        match &self.state {
            State::Present(_) => None,
            _ => Some(format!("{} {}", self.name, self.status())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(kind: Kind, paravirtual: bool) -> Backend {
        Backend {
            kind,
            name: format!("{kind}:0"),
            state: State::NotCompiled,
            paravirtual,
        }
    }

    #[test]
    fn the_paravirtual_list_applies_to_a_paravirtual_device_only() {
        assert_eq!(backend(Kind::Metal, false).xfail_lists(), ["metal"]);
        assert_eq!(
            backend(Kind::Metal, true).xfail_lists(),
            ["metal", "metal-paravirtual"]
        );
        assert_eq!(backend(Kind::Cpu, false).xfail_lists(), ["cpu"]);
    }

    #[test]
    fn every_list_a_backend_names_exists() {
        for kind in Kind::ALL {
            for name in backend(kind, kind == Kind::Metal).xfail_lists() {
                assert!(crate::xfail::LISTS.contains(&name.as_str()), "{name}");
            }
        }
    }
}
