//! The pure part of grouping: the newest actors a group shows, the sentence it renders, and
//! whether a new notification may still join it.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::ids::UserId;
use crate::users::UserSummaryRow;

/// How many of the newest actors a group shows (and stores).
pub const SHOWN_ACTORS: usize = 3;

/// One of a group's newest actors, as stored in `notification_groups.actors` (a JSON array,
/// newest first) and shown as a `UserSummary`. Usernames and display names never change, so
/// the stored copy stays true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
}

impl From<&UserSummaryRow> for Actor {
    fn from(user: &UserSummaryRow) -> Self {
        Actor {
            id: user.id,
            username: user.username.clone(),
            display_name: user.display_name.clone(),
        }
    }
}

/// The stored JSON array of actors; a value this code did not write reads as empty.
pub fn parse_actors(json: &str) -> Vec<Actor> {
    serde_json::from_str(json).unwrap_or_default()
}

/// The JSON array stored for `actors`.
pub fn actors_json(actors: &[Actor]) -> String {
    serde_json::to_string(actors).unwrap_or_else(|_| "[]".to_owned())
}

/// `actor` becomes the newest: put first (once), the list cut to [`SHOWN_ACTORS`].
pub fn prepend(stored: &str, actor: Actor) -> String {
    let mut actors = parse_actors(stored);
    actors.retain(|a| a.id != actor.id);
    actors.insert(0, actor);
    actors.truncate(SHOWN_ACTORS);
    actors_json(&actors)
}

/// From a group's present members, newest first (a commenter may appear more than once): how
/// many distinct actors there are, and the newest [`SHOWN_ACTORS`] of them.
pub fn distinct_newest(members: &[UserSummaryRow]) -> (i64, Vec<Actor>) {
    let mut seen = std::collections::HashSet::new();
    let mut actors = Vec::new();
    for member in members {
        if seen.insert(member.id) && actors.len() < SHOWN_ACTORS {
            actors.push(Actor::from(member));
        }
    }
    (seen.len() as i64, actors)
}

/// The sentence a group reads as: "bob liked your photo.", "bob and carol liked your photo.",
/// "bob, carol and 2 others liked your photo." (the same for comments and follows).
pub fn render(kind: &str, actors: &[Actor], actor_count: i64) -> String {
    let what = match kind {
        "like" => "liked your photo.",
        "comment" => "commented on your photo.",
        _ => "started following you.",
    };
    let name = |i: usize| actors.get(i).map_or("someone", |a| a.username.as_str());
    match actor_count {
        ..=1 => format!("{} {what}", name(0)),
        2 => format!("{} and {} {what}", name(0), name(1)),
        n => {
            let others = n - 2;
            let noun = if others == 1 { "other" } else { "others" };
            format!("{}, {} and {others} {noun} {what}", name(0), name(1))
        }
    }
}

/// Whether a notification made at `at` may join a group whose newest member joined at
/// `newest`: younger than the window.
pub fn joinable(newest: NaiveDateTime, at: NaiveDateTime, window_secs: i64) -> bool {
    (at - newest).num_milliseconds() < window_secs.saturating_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(id: i64, name: &str) -> Actor {
        Actor {
            id: UserId(id),
            username: name.into(),
            display_name: name.to_uppercase(),
        }
    }

    #[test]
    fn text_for_one_two_three_and_many() {
        let actors = [actor(1, "bob"), actor(2, "carol"), actor(3, "dan")];
        assert_eq!(render("like", &actors, 1), "bob liked your photo.");
        assert_eq!(
            render("like", &actors, 2),
            "bob and carol liked your photo."
        );
        assert_eq!(
            render("comment", &actors, 3),
            "bob, carol and 1 other commented on your photo."
        );
        assert_eq!(
            render("follow", &actors, 14),
            "bob, carol and 12 others started following you."
        );
    }

    #[test]
    fn the_newest_actor_goes_first_once_and_three_are_kept() {
        let mut stored = actors_json(&[]);
        for (id, name) in [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (2, "b")] {
            stored = prepend(&stored, actor(id, name));
        }
        let ids: Vec<i64> = parse_actors(&stored).iter().map(|a| a.id.0).collect();
        assert_eq!(ids, [2, 4, 3]);
        // PostgreSQL writes JSON with spaces; it reads the same.
        let pg = r#"[{"id": 5, "username": "e", "display_name": "E"}]"#;
        assert_eq!(parse_actors(pg), [actor(5, "e")]);
    }

    #[test]
    fn the_window_is_exclusive() {
        let start = NaiveDateTime::default();
        let later = |secs| start + chrono::Duration::seconds(secs);
        assert!(joinable(start, later(59), 60));
        assert!(!joinable(start, later(60), 60));
    }
}
