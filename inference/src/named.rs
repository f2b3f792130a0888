//! Closed sets of values known by stable names (ops, CPU kernel paths, backends): parsed from
//! their names and shown as them, with one error that lists the choices.

use crate::error::{Error, Result};

/// A value of a closed set, each with a stable name (reports, flags, environment variables).
pub trait Named: Copy + 'static {
    /// What a value is called in errors: `op`, `CPU kernel path`, `backend`.
    const WHAT: &'static str;
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
}

/// The value of `T` named `s` (case and surrounding spaces ignored).
pub fn parse<T: Named>(s: &str) -> Result<T> {
    let wanted = s.trim().to_ascii_lowercase();
    T::ALL
        .iter()
        .copied()
        .find(|v| v.name() == wanted)
        .ok_or_else(|| {
            let names: Vec<&str> = T::ALL.iter().map(|v| v.name()).collect();
            Error::Invalid(format!(
                "unknown {} `{s}`; use one of {}",
                T::WHAT,
                names.join(", ")
            ))
        })
}

/// Implements [`Named`] from the type's inherent `ALL` and `name`, and `FromStr` and
/// `Display` through the name.
#[macro_export]
macro_rules! named {
    ($t:ty, $what:literal) => {
        impl $crate::named::Named for $t {
            const WHAT: &'static str = $what;
            const ALL: &'static [Self] = &<$t>::ALL;
            fn name(self) -> &'static str {
                <$t>::name(self)
            }
        }

        impl ::std::str::FromStr for $t {
            type Err = $crate::Error;
            fn from_str(s: &str) -> $crate::Result<Self> {
                $crate::named::parse(s)
            }
        }

        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(<$t>::name(*self))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use crate::device::Backend;
    use crate::ops::cpu::kernel_path::KernelPath;
    use crate::ops::OpKind;

    #[test]
    fn every_value_has_its_own_name_parses_from_it_and_shows_as_it() {
        fn round_trip<T: super::Named + std::str::FromStr + std::fmt::Display + PartialEq>()
        where
            T::Err: std::fmt::Debug,
        {
            for &v in T::ALL {
                assert!(v.name().parse::<T>().unwrap() == v, "{}", v.name());
                assert_eq!(v.to_string(), v.name());
            }
            let names: std::collections::HashSet<&str> = T::ALL.iter().map(|v| v.name()).collect();
            assert_eq!(names.len(), T::ALL.len(), "two {}s share a name", T::WHAT);
        }
        round_trip::<OpKind>();
        round_trip::<KernelPath>();
        round_trip::<Backend>();
    }

    #[test]
    fn an_unknown_name_lists_the_choices() {
        let e = " Vulkan ".parse::<Backend>().unwrap_err().to_string();
        assert_eq!(e, "unknown backend ` Vulkan `; use one of cpu, cuda, metal");
        assert_eq!(" CUDA ".parse::<Backend>().unwrap(), Backend::Cuda);
        assert_eq!("AVX2".parse::<KernelPath>().unwrap(), KernelPath::Avx2);
        let e = "silu".parse::<OpKind>().unwrap_err().to_string();
        assert!(
            e.starts_with("unknown op `silu`; use one of matmul, linear,"),
            "{e}"
        );
    }
}
