//! Hand-written Postgres statements that diesel prepares once per
//! connection, like its query builder's statements.
//!
//! `diesel::sql_query` is never cached: every call sends the SQL text and
//! Postgres parses and plans it again, which for the claim's and the
//! finish's CTEs cost more server time than running them (profiled:
//! `pg_plan_queries`, `base_yyparse`). A [`Cached`] statement has a static
//! query id (its marker type `M`, one per statement), so diesel's
//! statement cache prepares it on first use on each connection and then
//! only binds and executes it.

use std::marker::PhantomData;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Untyped};
use diesel::QueryResult;

/// A value for one `$n` of a [`Cached`] statement.
pub(crate) enum Bind<'a> {
    BigInt(i64),
    Integer(i32),
    Text(&'a str),
    Texts(&'a [String]),
    TextRefs(&'a [&'a str]),
    BigInts(&'a [i64]),
    NullableTexts(&'a [Option<String>]),
}

/// A fixed SQL text whose `$1`, `$2`, … take `binds[0]`, `binds[1]`, …
/// (a number may appear several times). `M` names the statement in
/// diesel's cache: give each SQL text its own marker type.
pub(crate) struct Cached<'a, M> {
    sql: &'static str,
    binds: Vec<Bind<'a>>,
    /// False: planned anew on every call (see [`Cached::planned_each_time`]).
    cache: bool,
    marker: PhantomData<M>,
}

impl<'a, M> Cached<'a, M> {
    pub(crate) fn new(sql: &'static str, binds: Vec<Bind<'a>>) -> Self {
        Cached {
            sql,
            binds,
            cache: true,
            marker: PhantomData,
        }
    }

    /// Not prepared: Postgres plans it on every call, with the tables'
    /// sizes of the moment. For a statement whose best plan changes as a
    /// table grows: a prepared statement's generic plan is fixed after its
    /// fifth run and kept (until an `ANALYZE` invalidates it).
    pub(crate) fn planned_each_time(sql: &'static str, binds: Vec<Bind<'a>>) -> Self {
        Cached {
            cache: false,
            ..Cached::new(sql, binds)
        }
    }
}

impl<M: 'static> QueryId for Cached<'_, M> {
    type QueryId = M;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<M> Query for Cached<'_, M> {
    type SqlType = Untyped;
}

impl<M> diesel::RunQueryDsl<diesel::PgConnection> for Cached<'_, M> {}

impl<M> QueryFragment<Pg> for Cached<'_, M> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if !self.cache {
            out.unsafe_to_cache_prepared();
        }
        // Each `$n` becomes a bind of its own (diesel numbers them anew).
        let mut rest = self.sql;
        while let Some(at) = rest.find('$') {
            out.push_sql(&rest[..at]);
            let digits = rest[at + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            let bind = rest[at + 1..at + 1 + digits]
                .parse::<usize>()
                .ok()
                .and_then(|n| self.binds.get(n.checked_sub(1)?))
                .ok_or_else(|| {
                    diesel::result::Error::QueryBuilderError(
                        format!("no bind for {:?}", &rest[at..at + 1 + digits]).into(),
                    )
                })?;
            match bind {
                Bind::BigInt(v) => out.push_bind_param::<BigInt, _>(v)?,
                Bind::Integer(v) => out.push_bind_param::<Integer, _>(v)?,
                Bind::Text(v) => out.push_bind_param::<Text, str>(v)?,
                Bind::Texts(v) => out.push_bind_param::<Array<Text>, [String]>(v)?,
                Bind::TextRefs(v) => out.push_bind_param::<Array<Text>, [&str]>(v)?,
                Bind::BigInts(v) => out.push_bind_param::<Array<BigInt>, [i64]>(v)?,
                Bind::NullableTexts(v) => {
                    out.push_bind_param::<Array<Nullable<Text>>, [Option<String>]>(v)?
                }
            }
            rest = &rest[at + 1 + digits..];
        }
        out.push_sql(rest);
        Ok(())
    }
}
