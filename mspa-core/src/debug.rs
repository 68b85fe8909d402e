//! [`debug_fields!`](crate::debug_fields): a `Debug` impl that shows only some fields.

/// Implements [`Debug`](std::fmt::Debug) for a struct by showing only the named fields,
/// for types whose other fields are large tables or have no `Debug`. A trailing `..`
/// marks the output as non-exhaustive, as
/// [`finish_non_exhaustive`](std::fmt::DebugStruct::finish_non_exhaustive) does.
///
/// ```
/// struct Plan {
///     size: usize,
///     table: Vec<f32>,
/// }
/// mspa_core::debug_fields!(Plan { size, .. });
/// let plan = Plan { size: 2, table: vec![0.0; 2] };
/// assert_eq!(format!("{plan:?}"), "Plan { size: 2, .. }");
/// ```
#[macro_export]
macro_rules! debug_fields {
    (@impl $ty:ident { $($field:ident),* } $finish:ident) => {
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(::std::stringify!($ty))
                    $(.field(::std::stringify!($field), &self.$field))*
                    .$finish()
            }
        }
    };
    ($ty:ident { $($field:ident),* $(,)? }) => {
        $crate::debug_fields!(@impl $ty { $($field),* } finish);
    };
    ($ty:ident { $($field:ident,)* .. }) => {
        $crate::debug_fields!(@impl $ty { $($field),* } finish_non_exhaustive);
    };
}
